//! Test hosts and test environments for nixops' tests.

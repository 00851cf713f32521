//! The Nix glue embedded in the binary and its on-disk copy.
//!
//! It owns writing the `.nix` files once into the evaluator's temporary
//! directory. It must not change them: they are the project's `nix/` files.

use std::path::Path;

use super::EvalError;

/// The glue files, by name.
pub(crate) const FILES: &[(&str, &str)] = &[
    (
        "eval-machine-info.nix",
        include_str!("../../../../nix/eval-machine-info.nix"),
    ),
    ("options.nix", include_str!("../../../../nix/options.nix")),
    ("keys.nix", include_str!("../../../../nix/keys.nix")),
    ("backends.nix", include_str!("../../../../nix/backends.nix")),
    ("resource.nix", include_str!("../../../../nix/resource.nix")),
];

/// Write the glue into `dir`.
pub(crate) fn write_to(dir: &Path) -> Result<(), EvalError> {
    for (name, text) in FILES {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| EvalError::Io { path, source })?;
    }
    Ok(())
}

//! Parsing of ssh command lines that users give us (`nixops ssh`, `ssh-for-each`).
//!
//! Pure functions only: nothing here runs a process or touches a file.

/// The OpenSSH short options that take a value (`-p 22` or `-p22`).
const FLAGS_WITH_VALUE: &str = "bcDEeFIiLlmOopQRSWw";

/// Split user arguments into ssh flags and the remote command, the way `ssh` reads them:
/// leading words starting with `-` are flags; a flag whose letter takes a value
/// (`bcDEeFIiLlmOopQRSWw`) consumes the next word unless the value is attached (`-p22`);
/// combined short flags are split (`-vX` → `-v`, `-X`); `--` ends the flags and is
/// dropped; the first other word begins the command.
pub fn split_openssh_args<S: AsRef<str>>(args: &[S]) -> (Vec<String>, Vec<String>) {
    let mut flags = Vec::new();
    let mut rest = args.iter().map(|a| a.as_ref().to_owned());
    // Words still to look at before `rest`: the tail of a split combined flag.
    let mut pending: Option<String> = None;
    loop {
        let Some(arg) = pending.take().or_else(|| rest.next()) else {
            return (flags, Vec::new());
        };
        if arg == "--" {
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            let mut command = vec![arg];
            command.extend(rest);
            return (flags, command);
        }
        let letter = arg[1..].chars().next();
        let is_long = letter == Some('-');
        let takes_value = letter.is_some_and(|c| FLAGS_WITH_VALUE.contains(c));
        let letter_len = letter.map_or(0, char::len_utf8);
        if takes_value {
            let attached = arg.len() > 1 + letter_len;
            flags.push(arg);
            if !attached {
                if let Some(value) = rest.next() {
                    flags.push(value);
                }
            }
        } else if !is_long && arg.len() > 1 + letter_len {
            pending = Some(format!("-{}", &arg[1 + letter_len..]));
            flags.push(arg[..1 + letter_len].to_owned());
        } else {
            flags.push(arg);
        }
    }
    (flags, rest.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(args: &[&str]) -> (Vec<String>, Vec<String>) {
        split_openssh_args(args)
    }

    #[test]
    fn flags_with_values() {
        assert_eq!(
            split(&["-p", "22", "-i", "key", "uptime", "-v"]),
            (
                vec!["-p".into(), "22".into(), "-i".into(), "key".into()],
                vec!["uptime".into(), "-v".into()]
            )
        );
        assert_eq!(
            split(&["-p22", "ls"]),
            (vec!["-p22".into()], vec!["ls".into()])
        );
        assert_eq!(
            split(&["-o", "BatchMode=no"]),
            (vec!["-o".into(), "BatchMode=no".into()], vec![])
        );
    }

    #[test]
    fn combined_flags_are_split() {
        assert_eq!(
            split(&["-vX", "-tp", "2222", "w"]),
            (
                vec![
                    "-v".into(),
                    "-X".into(),
                    "-t".into(),
                    "-p".into(),
                    "2222".into()
                ],
                vec!["w".into()]
            )
        );
        assert_eq!(
            split(&["-vi/tmp/k", "w"]),
            (vec!["-v".into(), "-i/tmp/k".into()], vec!["w".into()])
        );
    }

    #[test]
    fn double_dash_ends_flags() {
        assert_eq!(
            split(&["-t", "--", "-x", "y"]),
            (vec!["-t".into()], vec!["-x".into(), "y".into()])
        );
        assert_eq!(split(&[]), (vec![], vec![]));
        assert_eq!(
            split(&["echo", "a b"]),
            (vec![], vec!["echo".into(), "a b".into()])
        );
    }
}

//! `tern passwd`: add, change, delete and upgrade users of a password file
//! in Mosquitto's format, with `mosquitto_passwd`'s flags. New hashes are
//! `$7$` (PBKDF2-SHA512, 101 iterations unless `-I`), which Mosquitto 2
//! reads; existing lines, comments included, are kept as they were.
//!
//! The file is replaced atomically (a temporary file in the same directory,
//! then a rename), keeping its permissions; a new file is created `0600`.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use tern_access::{PasswordFile, PasswordHash, DEFAULT_ITERATIONS, MAX_FIELD};
use tern_config::{PasswdAction, PasswdArgs};

/// Asks for a password with a prompt (no echo on a terminal).
pub type AskPassword<'a> = &'a mut dyn FnMut(&str) -> std::io::Result<String>;

/// Runs `tern passwd`; `Ok` is what to print, `Err` the error for stderr.
pub fn run(args: &PasswdArgs, ask: AskPassword<'_>) -> Result<String, String> {
    let iterations = args.iterations.unwrap_or(DEFAULT_ITERATIONS);
    let path = &args.file;
    let show = path.display();
    let (file, done) = match &args.action {
        PasswdAction::Set {
            user,
            password,
            create,
        } => {
            check_user(user)?;
            let mut file = if *create {
                PasswordFile::default()
            } else {
                read(path, PasswordFile::parse)?
            };
            let password = match password {
                Some(p) => p.clone(),
                None => {
                    let first =
                        ask("Password: ").map_err(|e| format!("cannot read the password: {e}"))?;
                    let again = ask("Reenter password: ")
                        .map_err(|e| format!("cannot read the password: {e}"))?;
                    if first != again {
                        return Err("passwords do not match".into());
                    }
                    first
                }
            };
            if password.is_empty() {
                return Err("the password must not be empty".into());
            }
            if password.len() > MAX_FIELD {
                return Err("the password is longer than 65535 bytes".into());
            }
            let existed = file.contains(user);
            let hash = PasswordHash::new_pbkdf2(password.as_bytes(), iterations)
                .map_err(|e| e.to_string())?;
            file.set(user, hash);
            let verb = if existed { "changed" } else { "added" };
            (file, format!("{show}: {verb} user {user:?}"))
        }
        PasswdAction::Delete { user } => {
            let mut file = read(path, PasswordFile::parse)?;
            if !file.remove(user) {
                return Err(format!("{show}: user {user:?} not found"));
            }
            (file, format!("{show}: deleted user {user:?}"))
        }
        PasswdAction::Upgrade => {
            let mut file = read(path, PasswordFile::parse_plain)?;
            let n = file.upgrade_plain(iterations).map_err(|e| e.to_string())?;
            (file, format!("{show}: hashed {n} plain-text password(s)"))
        }
    };
    write(path, &file.to_string()).map_err(|e| format!("cannot write {show}: {e}"))?;
    Ok(done)
}

fn check_user(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("the user name must not be empty".into());
    }
    if user.contains(':') {
        return Err("the user name must not contain ':'".into());
    }
    if user.len() > MAX_FIELD || user.contains(['\n', '\r']) {
        return Err("the user name must be one line of at most 65535 bytes".into());
    }
    Ok(())
}

fn read<E: std::fmt::Display>(
    path: &Path,
    parse: fn(&str) -> Result<PasswordFile, E>,
) -> Result<PasswordFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e} (use -c to create it)", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Replaces `path` with `text` atomically, keeping its mode (0600 when new).
fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let mode = std::fs::metadata(path).map_or(0o600, |m| m.permissions().mode() & 0o7777);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tern-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

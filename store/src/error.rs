//! The store's errors.

use std::path::PathBuf;

/// What can go wrong opening, reading or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine failed (I/O, a damaged journal or table).
    #[error("store {path}: {source}")]
    Engine {
        /// The worker database's directory.
        path: PathBuf,
        /// The engine's error.
        #[source]
        source: fjall::Error,
    },
    /// A file or directory of the data dir could not be made or read.
    #[error("store {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A record failed its checksum or does not decode.
    #[error(
        "store {path}: damaged record ({what}, key {key}); start with --repair ([store] \
         repair = true) to skip damaged records (they are logged, counted and deleted)"
    )]
    Corrupt {
        /// The worker database's directory.
        path: PathBuf,
        /// The record's key, hex.
        key: String,
        /// What is wrong.
        what: &'static str,
    },
    /// The data dir was written by a newer format.
    #[error("store {path}: format {found}, this build reads format {expected}")]
    Format {
        /// The worker database's directory.
        path: PathBuf,
        /// The format found.
        found: u32,
        /// The format this build reads.
        expected: u32,
    },
}

/// A key for messages: hex, at most 64 bytes of it.
pub(crate) fn hex(key: &[u8]) -> String {
    key.iter().take(64).map(|b| format!("{b:02x}")).collect()
}

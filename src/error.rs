//! The library's error types.

use std::io;

/// A run configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A numeric field outside its allowed range.
    #[error("{field} must be in {range}, got {value}")]
    OutOfRange {
        /// The option's name as typed (`workers`).
        field: &'static str,
        /// The rejected value.
        value: String,
        /// The allowed range.
        range: String,
    },
}

/// A failure of the wire protocol between the coordinator and a worker process.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The pipe failed or closed mid-frame.
    #[error("pipe error: {0}")]
    Io(#[from] io::Error),
    /// A frame longer than the protocol allows: garbage, or a desynchronised stream.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    FrameTooLong {
        /// Announced length.
        len: usize,
        /// Allowed maximum.
        max: usize,
    },
    /// A frame whose payload does not decode as a message.
    #[error("undecodable frame: {0}")]
    Decode(#[from] postcard::Error),
    /// A well-formed message out of place in the protocol.
    #[error("unexpected message: {0}")]
    Unexpected(&'static str),
}

/// A pool that could not be started or driven.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An OS thread could not be created.
    #[error("cannot start worker thread: {0}")]
    SpawnThread(#[source] io::Error),
    /// A worker process could not be started.
    #[error("cannot start worker process {exe}: {source}")]
    SpawnProcess {
        /// The executable that was run.
        exe: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// The event consumer went away, so nobody is listening to the run any more.
    #[error("event consumer closed")]
    ConsumerGone,
}

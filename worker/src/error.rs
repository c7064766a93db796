//! One error type for the worker library. Every variant carries what a user needs to fix the
//! input: the file or URL, the line where there is one, and what was expected.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid job: {0}")]
    InvalidJob(String),
    #[error(transparent)]
    Job(#[from] facetrain_proto::job::JobError),
    /// A problem with one row of a dataset CSV (line is 1-based).
    #[error("{file}:{line}: {message}")]
    BadRow { file: String, line: usize, message: String },
    #[error("dataset {file}: {message}")]
    BadDataset { file: String, message: String },
    /// `message` is exactly "not found" for a missing object (callers match on it).
    #[error("cannot {action} {url}: {message}")]
    Storage { action: StorageAction, url: String, message: String },
    #[error("checkpoint {location}: {message}")]
    Checkpoint { location: String, message: String },
    #[error("{0}")]
    Training(String),
    /// The loss or the gradient is not finite: training cannot go on from here.
    #[error("{0}")]
    NonFinite(String),
    /// The job needs more than this worker can give (memory, a backend it was not built with).
    #[error("{0}")]
    Unsupported(String),
    /// The gradient exchange failed; `retry` when the step should simply be redone.
    #[error("gradient exchange: {message}")]
    Exchange { retry: bool, message: String },
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }

    /// A failed read (or a location that cannot be read from).
    pub fn storage(url: impl fmt::Display, message: impl fmt::Display) -> Self {
        Self::storage_failed(StorageAction::Read, url, message)
    }

    pub fn storage_failed(action: StorageAction, url: impl fmt::Display, message: impl fmt::Display) -> Self {
        Self::Storage { action, url: url.to_string(), message: message.to_string() }
    }

    pub fn checkpoint(location: impl fmt::Display, message: impl fmt::Display) -> Self {
        Self::Checkpoint { location: location.to_string(), message: message.to_string() }
    }
}

/// What was being done with a storage location when it failed, for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageAction {
    Read,
    Write,
    Delete,
    List,
    /// Turning a path or URL into a location (bad scheme, `..` above the root).
    Resolve,
}

impl StorageAction {
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Delete => "delete",
            Self::List => "list",
            Self::Resolve => "resolve",
        }
    }
}

impl fmt::Display for StorageAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

//! What a call into the cluster can be refused with. The gRPC layer maps each kind to a status
//! code in one place (`service::status`); nothing here knows about the transport.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The request itself is wrong (a bad job.toml, a hands-on time of a month): `field` names
    /// the request field at fault, for clients that point at it (google.rpc.BadRequest).
    #[error("{reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{0}")]
    NotFound(String),
    /// Fine as a request, but the job or worker is not in a state that allows it.
    #[error("{0}")]
    Precondition(String),
    /// The step round moved on (membership changed): redo the step.
    #[error("{0}")]
    Stale(String),
    /// The caller is over its limit (submissions per minute): retry later.
    #[error("{0}")]
    Exhausted(String),
    /// The coordinator cannot take it now (the store refused, it is shutting down).
    #[error("{0}")]
    Unavailable(String),
}

impl DomainError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid { field, reason: reason.into() }
    }
}

pub type Result<T> = std::result::Result<T, DomainError>;

pub fn unknown_worker(worker: &str) -> DomainError {
    DomainError::NotFound(format!("unknown worker `{worker}`: register again"))
}

pub fn unknown_job(job: &str) -> DomainError {
    DomainError::NotFound(format!("no job `{job}`"))
}

pub fn not_running(job: &str) -> DomainError {
    DomainError::Precondition(format!("job `{job}` is not running"))
}

//! The few error kinds the platform distinguishes, mapped to gRPC status codes both ways, so a
//! client can act on what went wrong without parsing messages.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed (bad job.toml, oversized or non-finite gradient).
    InvalidArgument,
    NotFound,
    /// The request is fine but the job or worker is not in a state that allows it.
    FailedPrecondition,
    /// The step round was abandoned (membership changed); redo the step.
    Aborted,
    /// The caller is over a limit (job submissions per minute); retry after the wait it names.
    ResourceExhausted,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn status(self, message: impl Into<String>) -> tonic::Status {
        tonic::Status::new(self.into(), message)
    }
}

impl From<ErrorCode> for tonic::Code {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::InvalidArgument => tonic::Code::InvalidArgument,
            ErrorCode::NotFound => tonic::Code::NotFound,
            ErrorCode::FailedPrecondition => tonic::Code::FailedPrecondition,
            ErrorCode::Aborted => tonic::Code::Aborted,
            ErrorCode::ResourceExhausted => tonic::Code::ResourceExhausted,
            ErrorCode::Unavailable => tonic::Code::Unavailable,
            ErrorCode::Internal => tonic::Code::Internal,
        }
    }
}

impl From<tonic::Code> for ErrorCode {
    fn from(code: tonic::Code) -> Self {
        match code {
            tonic::Code::InvalidArgument | tonic::Code::OutOfRange => Self::InvalidArgument,
            tonic::Code::NotFound => Self::NotFound,
            tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists => Self::FailedPrecondition,
            tonic::Code::Aborted => Self::Aborted,
            tonic::Code::ResourceExhausted => Self::ResourceExhausted,
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => Self::Unavailable,
            _ => Self::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_grpc() {
        for code in [
            ErrorCode::InvalidArgument,
            ErrorCode::NotFound,
            ErrorCode::FailedPrecondition,
            ErrorCode::Aborted,
            ErrorCode::ResourceExhausted,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ] {
            assert_eq!(ErrorCode::from(tonic::Code::from(code)), code);
        }
    }
}

//! facectl's exit codes, one per kind of outcome a script handles differently. The table is in
//! the README ("Exit codes") and docs/operations.md; `tests/tests/cli_exit.rs` checks each.

/// Why a command ended without success, beyond "it failed".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// The command failed: bad input, a request the coordinator refused, or a job that was
    /// watched or waited for and failed or was cancelled.
    Failed,
    /// The coordinator could not be reached or stopped answering: retrying may help.
    Unreachable,
    /// The coordinator refused who we are (no or a wrong token or certificate).
    Unauthenticated,
}

impl ExitKind {
    /// 2 is clap's, for usage errors, before anything runs.
    pub const USAGE: u8 = 2;

    pub fn code(self) -> u8 {
        match self {
            Self::Failed => 1,
            Self::Unreachable => 3,
            Self::Unauthenticated => 4,
        }
    }
}

/// An error that knows its exit code; any other error exits 1.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Classified {
    pub kind: ExitKind,
    pub message: String,
}

impl Classified {
    pub fn error(kind: ExitKind, message: String) -> anyhow::Error {
        anyhow::Error::new(Self { kind, message })
    }
}

/// The exit code for a command's error.
pub fn code_of(error: &anyhow::Error) -> u8 {
    error.downcast_ref::<Classified>().map_or(ExitKind::Failed, |c| c.kind).code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classified_errors_keep_their_code_and_others_exit_1() {
        let unreachable = Classified::error(ExitKind::Unreachable, "no answer".into());
        assert_eq!((code_of(&unreachable), unreachable.to_string()), (3, "no answer".into()));
        assert_eq!(code_of(&anyhow::anyhow!("bad job.toml")), 1);
        let codes: Vec<u8> =
            [ExitKind::Failed, ExitKind::Unreachable, ExitKind::Unauthenticated].map(ExitKind::code).into();
        assert_eq!(codes, [1, 3, 4]);
        assert!(!codes.contains(&ExitKind::USAGE), "usage keeps clap's 2");
    }
}

//! Who may call what. Each role goes one direction: with mutual TLS, worker RPCs need a client
//! certificate of the cluster CA for the worker name, and that certificate may call nothing
//! else; job RPCs (facectl) need another certificate of the CA or a bearer token. With no client
//! CA and no tokens the API is open, which `main` only allows on loopback unless the operator
//! says `--insecure`.
//!
//! The decisions are plain functions of what the caller presented ([`Caller`]); the
//! interceptors only read the request and log refusals, at most one line per peer per window.

mod refusals;
mod submissions;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use facetrain_proto::auth::{Token, presented_token};
use facetrain_proto::tls::presents_name;
use tonic::service::Interceptor;
use tonic::{Request, Status};
use tracing::warn;

pub use refusals::RefusalLog;
pub use submissions::{Submissions, SubmitLimit};

#[derive(Clone, Debug, Default)]
pub struct AccessPolicy {
    tokens: Arc<Vec<Token>>,
    /// Client certificates are verified against the cluster CA.
    mutual_tls: bool,
    /// The name a worker certificate carries: any other certificate of the CA (facectl's) may
    /// call the job API but not act as a worker, and a worker's may not call the job API.
    worker_name: String,
    /// Shared by both services, so one peer's refusals are counted together.
    refusals: Arc<Mutex<RefusalLog>>,
}

/// The client certificate a caller presented (verified by the TLS handshake against the CA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Certificate {
    None,
    /// Issued for the worker name.
    Worker,
    /// Any other certificate of the CA (facectl's).
    Other,
}

/// The bearer token a caller presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    None,
    Valid,
    Invalid,
}

/// What a caller presented, as far as access is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub certificate: Certificate,
    pub token: Presented,
}

const NEEDS_CREDENTIALS: &str = "this coordinator requires authentication: give facectl a token (FACETRAIN_TOKEN or \
                                 --token-file) or a client certificate (--tls-cert/--tls-key)";

impl AccessPolicy {
    pub fn new(tokens: Vec<Token>, mutual_tls: bool, worker_name: &str) -> Self {
        Self { tokens: Arc::new(tokens), mutual_tls, worker_name: worker_name.to_string(), ..Self::default() }
    }

    /// Anyone who can reach the port may call anything.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty() && !self.mutual_tls
    }

    pub fn jobs(&self) -> JobAccess {
        JobAccess(self.clone())
    }

    pub fn workers(&self) -> WorkerAccess {
        WorkerAccess(self.clone())
    }

    /// The job API (facectl): a certificate of the CA that is not a worker's, or a valid token.
    /// A worker certificate is refused even beside a token: a worker never needs the job API,
    /// so a stolen worker key cannot submit or cancel jobs.
    pub fn admit_job_call(&self, caller: Caller) -> Result<(), String> {
        if self.is_open() {
            return Ok(());
        }
        match caller.certificate {
            Certificate::Worker => {
                return Err(format!(
                    "a worker certificate (`{}`) may only call worker RPCs; job RPCs need facectl's client \
                     certificate or a bearer token",
                    self.worker_name
                ));
            }
            Certificate::Other if self.mutual_tls => return Ok(()),
            Certificate::Other | Certificate::None => {}
        }
        if self.tokens.is_empty() {
            return Err("job RPCs need a client certificate signed by the cluster CA (mutual TLS)".into());
        }
        check_token(caller.token)
    }

    /// The worker protocol: with mutual TLS, a worker certificate of the CA; else a valid token.
    pub fn admit_worker_call(&self, caller: Caller) -> Result<(), String> {
        if self.is_open() {
            return Ok(());
        }
        if self.mutual_tls {
            return match caller.certificate {
                Certificate::Worker => Ok(()),
                Certificate::Other | Certificate::None => Err(format!(
                    "worker RPCs need a client certificate signed by the cluster CA for `{}`",
                    self.worker_name
                )),
            };
        }
        check_token(caller.token)
    }

    fn caller<T>(&self, request: &Request<T>) -> Caller {
        let certificate = match request.peer_certs() {
            Some(certs) if presents_name(&certs, &self.worker_name) => Certificate::Worker,
            Some(certs) if !certs.is_empty() => Certificate::Other,
            _ => Certificate::None,
        };
        let token = match presented_token(request) {
            Some(presented) if self.tokens.iter().any(|t| t.matches(presented)) => Presented::Valid,
            Some(_) => Presented::Invalid,
            None => Presented::None,
        };
        Caller { certificate, token }
    }

    /// The refusal as a status, logged unless this peer was logged within the window.
    fn refuse<T>(&self, request: &Request<T>, reason: String) -> Status {
        let peer = request.remote_addr();
        let logged = self.refusals.lock().map(|mut log| log.record(peer.map(|a| a.ip()), Instant::now()));
        // A poisoned lock only loses rate limiting: log rather than stay silent.
        if let Some(suppressed) = logged.unwrap_or(Some(0)) {
            let peer = peer.map(|a| a.to_string()).unwrap_or_default();
            warn!(peer, reason, suppressed, "request refused: unauthenticated");
        }
        Status::unauthenticated(reason)
    }
}

fn check_token(token: Presented) -> Result<(), String> {
    match token {
        Presented::Valid => Ok(()),
        Presented::Invalid => Err("the bearer token is not valid".into()),
        Presented::None => Err(NEEDS_CREDENTIALS.into()),
    }
}

/// facectl's API.
#[derive(Clone, Debug)]
pub struct JobAccess(AccessPolicy);

impl Interceptor for JobAccess {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        match self.0.admit_job_call(self.0.caller(&request)) {
            Ok(()) => Ok(request),
            Err(reason) => Err(self.0.refuse(&request, reason)),
        }
    }
}

/// The worker protocol.
#[derive(Clone, Debug)]
pub struct WorkerAccess(AccessPolicy);

impl Interceptor for WorkerAccess {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        match self.0.admit_worker_call(self.0.caller(&request)) {
            Ok(()) => Ok(request),
            Err(reason) => Err(self.0.refuse(&request, reason)),
        }
    }
}

#[cfg(test)]
mod tests {
    use facetrain_proto::auth::AttachToken;

    use super::*;

    fn token() -> Token {
        Token::new("0123456789abcdef-token").unwrap()
    }

    fn request_with(token: Option<&Token>) -> Request<()> {
        AttachToken::new(token).call(Request::new(())).unwrap()
    }

    fn caller(certificate: Certificate, token: Presented) -> Caller {
        Caller { certificate, token }
    }

    #[test]
    fn an_open_policy_lets_everything_through() {
        let policy = AccessPolicy::default();
        assert!(policy.is_open());
        assert!(policy.jobs().call(request_with(None)).is_ok());
        assert!(policy.workers().call(request_with(None)).is_ok());
    }

    #[test]
    fn tokens_guard_both_services_without_mutual_tls() {
        let policy = AccessPolicy::new(vec![token()], false, "facetrain-worker");
        let refused = policy.jobs().call(request_with(None)).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        assert!(refused.message().contains("FACETRAIN_TOKEN"), "{}", refused.message());
        let wrong = Token::new("0123456789abcdef-wrong").unwrap();
        let refused = policy.workers().call(request_with(Some(&wrong))).unwrap_err();
        assert_eq!(refused.message(), "the bearer token is not valid");
        assert!(policy.jobs().call(request_with(Some(&token()))).is_ok());
        assert!(policy.workers().call(request_with(Some(&token()))).is_ok());
    }

    #[test]
    fn with_mutual_tls_a_token_does_not_make_a_worker() {
        let policy = AccessPolicy::new(vec![token()], true, "facetrain-worker");
        assert!(policy.jobs().call(request_with(Some(&token()))).is_ok());
        let refused = policy.workers().call(request_with(Some(&token()))).unwrap_err();
        assert!(refused.message().contains("client certificate"), "{}", refused.message());
    }

    #[test]
    fn a_worker_certificate_may_not_call_the_job_api_even_with_a_token() {
        for tokens in [vec![], vec![token()]] {
            let policy = AccessPolicy::new(tokens, true, "facetrain-worker");
            for token in [Presented::None, Presented::Valid] {
                let refused = policy.admit_job_call(caller(Certificate::Worker, token)).unwrap_err();
                assert!(refused.contains("may only call worker RPCs"), "{refused}");
            }
            assert_eq!(policy.admit_worker_call(caller(Certificate::Worker, Presented::None)), Ok(()));
        }
    }

    #[test]
    fn each_role_goes_one_direction_under_mutual_tls() {
        let policy = AccessPolicy::new(vec![token()], true, "facetrain-worker");
        let operator = caller(Certificate::Other, Presented::None);
        assert_eq!(policy.admit_job_call(operator), Ok(()));
        assert!(policy.admit_worker_call(operator).unwrap_err().contains("`facetrain-worker`"));
        let token_holder = caller(Certificate::None, Presented::Valid);
        assert_eq!(policy.admit_job_call(token_holder), Ok(()));
        assert!(policy.admit_worker_call(token_holder).is_err());
        let certificate_only = AccessPolicy::new(vec![], true, "facetrain-worker");
        let refused = certificate_only.admit_job_call(caller(Certificate::None, Presented::Valid)).unwrap_err();
        assert!(refused.contains("mutual TLS"), "{refused}");
    }
}

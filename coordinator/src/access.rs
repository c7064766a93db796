//! Who may call what. With mutual TLS, worker RPCs need a client certificate signed by the
//! cluster CA (the TLS handshake verified it); job RPCs (facectl) need such a certificate or a
//! bearer token. With no client CA and no tokens the API is open, which `main` only allows on
//! loopback unless the operator says `--insecure`.

use std::sync::Arc;

use facetrain_proto::auth::{Token, presented_token};
use facetrain_proto::tls::presents_name;
use tonic::service::Interceptor;
use tonic::{Request, Status};
use tracing::warn;

#[derive(Clone, Debug, Default)]
pub struct AccessPolicy {
    tokens: Arc<Vec<Token>>,
    /// Client certificates are verified against the cluster CA.
    mutual_tls: bool,
    /// The name a worker certificate carries: any other certificate of the CA (facectl's) may
    /// call the job API but not act as a worker.
    worker_name: String,
}

impl AccessPolicy {
    pub fn new(tokens: Vec<Token>, mutual_tls: bool, worker_name: &str) -> Self {
        Self { tokens: Arc::new(tokens), mutual_tls, worker_name: worker_name.to_string() }
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

    fn has_certificate<T>(request: &Request<T>) -> bool {
        request.peer_certs().is_some_and(|certs| !certs.is_empty())
    }

    fn has_worker_certificate<T>(&self, request: &Request<T>) -> bool {
        request.peer_certs().is_some_and(|certs| presents_name(&certs, &self.worker_name))
    }

    fn check_token<T>(&self, request: &Request<T>) -> Result<(), Status> {
        match presented_token(request) {
            Some(presented) if self.tokens.iter().any(|t| t.matches(presented)) => Ok(()),
            Some(_) => Err(refuse(request, "the bearer token is not valid")),
            None => Err(refuse(
                request,
                "this coordinator requires authentication: give facectl a token (FACETRAIN_TOKEN or \
                 --token-file) or a client certificate (--tls-cert/--tls-key)",
            )),
        }
    }
}

fn refuse<T>(request: &Request<T>, message: &str) -> Status {
    let peer = request.remote_addr().map(|a| a.to_string()).unwrap_or_default();
    warn!(peer, reason = message, "request refused: unauthenticated");
    Status::unauthenticated(message)
}

/// facectl's API: a verified client certificate or a valid token.
#[derive(Clone, Debug)]
pub struct JobAccess(AccessPolicy);

impl Interceptor for JobAccess {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if self.0.is_open() || (self.0.mutual_tls && AccessPolicy::has_certificate(&request)) {
            return Ok(request);
        }
        if self.0.tokens.is_empty() {
            return Err(refuse(&request, "job RPCs need a client certificate signed by the cluster CA (mutual TLS)"));
        }
        self.0.check_token(&request).map(|()| request)
    }
}

/// The worker protocol: with mutual TLS, a verified client certificate; else a valid token.
#[derive(Clone, Debug)]
pub struct WorkerAccess(AccessPolicy);

impl Interceptor for WorkerAccess {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if self.0.mutual_tls {
            return match self.0.has_worker_certificate(&request) {
                true => Ok(request),
                false => {
                    let message = format!(
                        "worker RPCs need a client certificate signed by the cluster CA for `{}`",
                        self.0.worker_name
                    );
                    Err(refuse(&request, &message))
                }
            };
        }
        if self.0.tokens.is_empty() {
            return Ok(request);
        }
        self.0.check_token(&request).map(|()| request)
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
}

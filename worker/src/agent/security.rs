//! How a worker proves itself and checks the other side: TLS to the coordinator (with a client
//! certificate for mutual TLS, or a bearer token), and mutual TLS between ring peers, which all
//! present the cluster's worker certificate and check it under one shared name.

use facetrain_proto::auth::{AttachToken, Token, presented_token};
use facetrain_proto::tls::{ClientCertificates, TlsError, TlsFiles, presents_name};
use tonic::service::Interceptor;
use tonic::transport::{Endpoint, ServerTlsConfig};
use tonic::{Request, Status};

/// The name every worker certificate carries, checked by ring peers (pod IPs are not in it).
pub const DEFAULT_PEER_SERVER_NAME: &str = "facetrain-worker";

#[derive(Debug, Clone)]
pub struct AgentSecurity {
    pub tls: TlsFiles,
    /// Overrides the name checked against the coordinator's certificate (default: URL host).
    pub coordinator_server_name: Option<String>,
    pub peer_server_name: String,
    pub token: Option<Token>,
}

impl Default for AgentSecurity {
    fn default() -> Self {
        Self {
            tls: TlsFiles::default(),
            coordinator_server_name: None,
            peer_server_name: DEFAULT_PEER_SERVER_NAME.into(),
            token: None,
        }
    }
}

impl AgentSecurity {
    pub fn coordinator_endpoint(&self, url: &str) -> Result<Endpoint, TlsError> {
        self.tls.endpoint(url, self.coordinator_server_name.as_deref())
    }

    pub fn attach_token(&self) -> AttachToken {
        AttachToken::new(self.token.as_ref())
    }

    /// Ring peers speak mutual TLS when workers have their own certificate; a worker that only
    /// trusts the coordinator's CA (and uses a token) talks to peers in plaintext with the token.
    pub fn peer_tls(&self) -> bool {
        self.tls.cert.is_some()
    }

    pub fn peer_endpoint(&self, address: &str) -> Result<Endpoint, TlsError> {
        if !self.peer_tls() {
            return TlsFiles::default().endpoint(&format!("http://{address}"), None);
        }
        self.tls.endpoint(&format!("https://{address}"), Some(&self.peer_server_name))
    }

    /// Only workers of the cluster (a certificate the CA signed) may send ring traffic.
    pub fn peer_server_tls(&self) -> Result<Option<ServerTlsConfig>, TlsError> {
        if !self.peer_tls() {
            return Ok(None);
        }
        self.tls.server_config(ClientCertificates::Required)
    }
}

/// Who may send ring traffic: with TLS, a certificate issued for the workers' name (the
/// handshake verified the chain); without, the cluster's token when there is one.
#[derive(Clone, Debug)]
pub enum PeerAccess {
    WorkerCertificate(String),
    Token(Option<Token>),
}

impl PeerAccess {
    pub fn for_agent(security: &AgentSecurity) -> Self {
        match security.peer_tls() {
            true => Self::WorkerCertificate(security.peer_server_name.clone()),
            false => Self::Token(security.token.clone()),
        }
    }
}

impl Interceptor for PeerAccess {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        match self {
            Self::WorkerCertificate(name) if !request.peer_certs().is_some_and(|c| presents_name(&c, name)) => {
                Err(Status::unauthenticated(format!("ring traffic needs a worker certificate for `{name}`")))
            }
            Self::Token(Some(token)) if !presented_token(&request).is_some_and(|p| token.matches(p)) => {
                Err(Status::unauthenticated("ring traffic needs the cluster's bearer token"))
            }
            _ => Ok(request),
        }
    }
}

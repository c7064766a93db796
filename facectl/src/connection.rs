//! One command's connection to the coordinator, bounded in time: connecting, every call and a
//! watch's silence each give up after `--timeout`, and every failure names the command and the
//! coordinator's address, with the reason underneath (a TLS alert, a refused connection) rather
//! than only "transport error". What a failure means is decided by [`explain`], plain logic.

use std::error::Error as StdError;
use std::time::Duration;

use facetrain_proto::auth::{AttachToken, Token};
use facetrain_proto::pb;
use facetrain_proto::pb::job_service_client::JobServiceClient;
use facetrain_proto::tls::TlsFiles;
use tokio_rustls::rustls::pki_types::ServerName;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::dial::{Dialer, Observed};
use crate::exit::{Classified, ExitKind};
use crate::remote::Remote;

pub type Client = JobServiceClient<InterceptedService<Channel, AttachToken>>;

/// Connecting takes at most this long (or `--timeout`, when shorter).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connected client for one command (`status`, `watch`...).
pub struct Connection {
    pub client: Client,
    what: Attempt,
    observed: Observed,
}

/// What is being attempted, for messages.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The facectl command, e.g. `status`.
    pub command: &'static str,
    pub address: String,
    pub timeout: Duration,
}

impl Connection {
    pub async fn open(remote: &Remote, command: &'static str) -> anyhow::Result<Self> {
        let what =
            Attempt { command, address: remote.coordinator.clone(), timeout: Duration::from_secs(remote.timeout) };
        let token = token(remote)?;
        let tls = TlsFiles { ca: remote.tls_ca.clone(), cert: remote.tls_cert.clone(), key: remote.tls_key.clone() };
        let invalid = |e: &dyn std::fmt::Display| anyhow::anyhow!("facectl {command}: {e}");
        let config = tls.client_config(&remote.coordinator).map_err(|e| invalid(&e))?;
        // tonic speaks plain HTTP/2 over what the dialer returns; the dialer adds TLS.
        let (url, tls) = match config {
            None => (remote.coordinator.clone(), None),
            Some(config) => {
                let url = remote.coordinator.replacen("https://", "http://", 1);
                let uri: tonic::codegen::http::Uri = url.parse().map_err(|e| invalid(&format!("URL `{url}`: {e}")))?;
                let name =
                    remote.tls_server_name.clone().or_else(|| uri.host().map(str::to_string)).unwrap_or_default();
                let name = name.trim_start_matches('[').trim_end_matches(']').to_string();
                let server_name = ServerName::try_from(name.clone())
                    .map_err(|e| invalid(&format!("`{name}` is not a server name to check: {e}")))?;
                (url, Some((config, server_name)))
            }
        };
        let endpoint = tonic::transport::Endpoint::from_shared(url)
            .map_err(|e| invalid(&format!("URL `{}`: not a valid URL: {e}", remote.coordinator)))?;
        let connect_timeout = CONNECT_TIMEOUT.min(what.timeout);
        // Keep-alive pings while a call is open: a coordinator that stops answering them (frozen,
        // or the network silently gone) fails the call after `timeout` instead of never.
        let half = what.timeout / 2;
        let endpoint = endpoint
            .connect_timeout(connect_timeout)
            .http2_keep_alive_interval(half)
            .keep_alive_timeout(half)
            .keep_alive_while_idle(true);
        let observed = Observed::default();
        let dialer = Dialer { tls, observed: observed.clone() };
        let channel = match tokio::time::timeout(connect_timeout, endpoint.connect_with_connector(dialer)).await {
            Ok(Ok(channel)) => channel,
            // Reached but refused during the handshake (a TLS alert): the connection failed, and why.
            Ok(Err(error)) => {
                let failure = match observed.error() {
                    Some(reason) => Failure::ConnectionLost(reason),
                    None => Failure::CannotConnect(chain(&error)),
                };
                return Err(what.failure(&failure));
            }
            Err(_) => return Err(what.failure(&Failure::NoAnswer { within: connect_timeout })),
        };
        let client = JobServiceClient::with_interceptor(channel, AttachToken::new(token.as_ref()));
        Ok(Self { client, what, observed })
    }

    /// A request that gives up after `--timeout`.
    /// Every job, oldest first, a page at a time (without their job.toml).
    pub async fn all_jobs(&mut self) -> anyhow::Result<Vec<pb::Job>> {
        let mut jobs = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = pb::ListJobsRequest { page_size: 1000, page_token, ..Default::default() };
            let request = self.request(page);
            let response = self.client.list_jobs(request).await.map_err(|s| self.failed(s))?.into_inner();
            jobs.extend(response.jobs);
            if response.next_page_token.is_empty() {
                return Ok(jobs);
            }
            page_token = response.next_page_token;
        }
    }

    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.what.timeout);
        request
    }

    /// The coordinator's answer (or silence) as an error that says what happened where.
    pub fn failed(&self, status: tonic::Status) -> anyhow::Error {
        let seen = Seen { silent_for: self.observed.silent_for(), io_error: self.observed.error() };
        self.what.failure(&explain(&status, self.what.timeout, &seen))
    }
}

fn token(remote: &Remote) -> anyhow::Result<Option<Token>> {
    if let Ok(value) = std::env::var("FACETRAIN_TOKEN") {
        return Token::new(&value).map(Some).map_err(|e| anyhow::anyhow!("FACETRAIN_TOKEN: {e}"));
    }
    remote.token_file.as_deref().map(Token::read).transpose().map_err(anyhow::Error::msg)
}

/// What the connection itself saw, beside the call's status.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    /// How long nothing has come from the coordinator.
    pub silent_for: Duration,
    /// The first I/O error under HTTP/2 (a TLS alert, a reset), which tonic does not pass on.
    pub io_error: Option<String>,
}

/// Why a call to the coordinator failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Nothing came back in time: no answer to the call, or no answer to keep-alive pings.
    NoAnswer {
        within: Duration,
    },
    CannotConnect(String),
    /// The connection broke; the reason from the transport (often a TLS alert).
    ConnectionLost(String),
    /// The coordinator answered with an error status.
    Refused {
        code: tonic::Code,
        message: String,
    },
}

impl Attempt {
    pub fn failure(&self, failure: &Failure) -> anyhow::Error {
        let (command, address) = (self.command, &self.address);
        let (kind, message) = match failure {
            Failure::NoAnswer { within } => (
                ExitKind::Unreachable,
                format!(
                    "facectl {command}: no answer from {address} within {} s (is the coordinator running and \
                     reachable? --timeout sets the wait)",
                    within.as_secs_f64()
                ),
            ),
            Failure::CannotConnect(reason) => {
                (ExitKind::Unreachable, format!("facectl {command}: cannot connect to {address}: {reason}"))
            }
            Failure::ConnectionLost(reason) => {
                let hint = tls_alert_hint(reason).map(|hint| format!(" ({hint})")).unwrap_or_default();
                (
                    ExitKind::Unreachable,
                    format!("facectl {command}: the connection to {address} failed: {reason}{hint}"),
                )
            }
            Failure::Refused { code: tonic::Code::Unauthenticated, message } => (
                ExitKind::Unauthenticated,
                format!("facectl {command}: {address} refused the call: unauthenticated: {message}"),
            ),
            Failure::Refused { code: tonic::Code::PermissionDenied, message } => (
                ExitKind::Unauthenticated,
                format!("facectl {command}: {address} refused the call: permission denied: {message}"),
            ),
            // Named too: what answered may not be the coordinator (a proxy's HTTP 404).
            Failure::Refused { message, .. } => {
                (ExitKind::Failed, format!("facectl {command}: {address} answered: {message}"))
            }
        };
        Classified::error(kind, message)
    }
}

/// What a TLS alert from the coordinator says about this client's certificate, in words.
fn tls_alert_hint(reason: &str) -> Option<&'static str> {
    let alert = reason.split("received fatal alert: ").nth(1)?;
    let name = alert.split(|c: char| !c.is_ascii_alphanumeric()).next()?;
    Some(match name {
        "CertificateExpired" => "the coordinator says this client certificate has expired (--tls-cert)",
        "CertificateRequired" => "the coordinator requires a client certificate (--tls-cert/--tls-key) or a token",
        "UnknownCA" | "BadCertificate" | "DecryptError" | "CertificateUnknown" | "UnsupportedCertificate" => {
            "the coordinator does not accept this client certificate: is it signed by the coordinator's CA? (--tls-cert)"
        }
        "CertificateRevoked" => "the coordinator says this client certificate is revoked",
        _ => return None,
    })
}

/// What a failed call's status means. Transport failures arrive as statuses too (`Unknown`,
/// `Unavailable`, `Cancelled`) with the real reason in the source chain; timeouts become
/// [`Failure::NoAnswer`]: the call's deadline, or a connection dropped after `silent_for` of
/// silence from the coordinator (keep-alive pings go unanswered for `timeout` before the
/// connection is dropped; a live coordinator answers them, so a broken connection it closed
/// fails well within that).
pub fn explain(status: &tonic::Status, timeout: Duration, seen: &Seen) -> Failure {
    let sources = chain_of(status.source());
    // The coordinator's own answers come as status headers; tonic makes transport failures into
    // statuses that keep the failure as their source.
    let from_transport = status.source().is_some();
    let timed_out = |text: &str| text.contains("Timeout expired") || text.contains("timed out");
    if status.code() == tonic::Code::DeadlineExceeded
        || (status.code() == tonic::Code::Cancelled && timed_out(status.message()))
        || (from_transport
            && (timed_out(status.message()) || timed_out(&sources) || seen.silent_for >= timeout * 9 / 10))
    {
        return Failure::NoAnswer { within: timeout };
    }
    match status.code() {
        tonic::Code::Unknown | tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Internal
            if from_transport =>
        {
            let reason = match (&seen.io_error, sources.is_empty()) {
                (Some(io_error), _) => io_error.clone(),
                (None, true) => status.message().to_string(),
                (None, false) => sources,
            };
            Failure::ConnectionLost(reason)
        }
        code => Failure::Refused { code, message: status.message().to_string() },
    }
}

/// An error and its sources as one line, each cause once (`a: b: c`).
pub fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    append(&mut parts, error.source());
    parts.join(": ")
}

fn chain_of(error: Option<&(dyn StdError + 'static)>) -> String {
    let mut parts = Vec::new();
    append(&mut parts, error);
    parts.join(": ")
}

fn append(parts: &mut Vec<String>, mut next: Option<&(dyn StdError + 'static)>) {
    while let Some(error) = next {
        let text = error.to_string();
        // Wrappers often repeat their source's text; keep what adds something.
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = error.source();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(30);
    /// Something came from the coordinator just now, and the connection saw no error.
    const HEARD: Seen = Seen { silent_for: Duration::from_millis(10), io_error: None };

    fn attempt() -> Attempt {
        Attempt { command: "status", address: "http://127.0.0.1:7070".into(), timeout: TIMEOUT }
    }

    #[derive(Debug)]
    struct Cause(&'static str, Option<Box<Cause>>);

    impl std::fmt::Display for Cause {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Cause {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.1.as_deref().map(|c| c as &(dyn StdError + 'static))
        }
    }

    #[test]
    fn a_deadline_names_the_command_address_and_wait() {
        let status = tonic::Status::from_error(Box::new(tonic::TimeoutExpired(())));
        let failure = explain(&status, TIMEOUT, &HEARD);
        assert_eq!(failure, Failure::NoAnswer { within: TIMEOUT });
        let message = attempt().failure(&failure).to_string();
        assert!(message.starts_with("facectl status: no answer from http://127.0.0.1:7070 within 30 s"), "{message}");
    }

    #[test]
    fn unanswered_keep_alive_pings_are_no_answer() {
        let status = tonic::Status::from_error(Box::new(Cause(
            "http2 error",
            Some(Box::new(Cause("keep-alive timed out", None))),
        )));
        assert_eq!(explain(&status, TIMEOUT, &HEARD), Failure::NoAnswer { within: TIMEOUT });
        // A coordinator's own message that happens to say "timed out" is its answer.
        let status = tonic::Status::failed_precondition("the step timed out");
        assert!(matches!(explain(&status, TIMEOUT, &HEARD), Failure::Refused { .. }));
    }

    #[test]
    fn a_connection_dropped_after_a_silence_as_long_as_the_timeout_is_no_answer() {
        let broken = || tonic::Status::from_error(Box::new(Cause("stream closed because of a broken pipe", None)));
        let silent = |silent_for| Seen { silent_for, io_error: None };
        assert_eq!(explain(&broken(), TIMEOUT, &silent(TIMEOUT)), Failure::NoAnswer { within: TIMEOUT });
        assert!(matches!(explain(&broken(), TIMEOUT, &silent(TIMEOUT / 2)), Failure::ConnectionLost(_)));
        // The coordinator's own answers are answers, however long it took.
        let answer = tonic::Status::not_found("no job");
        assert!(matches!(explain(&answer, TIMEOUT, &silent(TIMEOUT)), Failure::Refused { .. }));
    }

    #[test]
    fn transport_failures_show_the_reason_from_the_source_chain() {
        let alert = Cause("received fatal alert: UnknownCA", None);
        let io = Cause("connection error", Some(Box::new(alert)));
        let status = tonic::Status::from_error(Box::new(io));
        let failure = explain(&status, TIMEOUT, &HEARD);
        assert_eq!(failure, Failure::ConnectionLost("connection error: received fatal alert: UnknownCA".into()));
        let message = attempt().failure(&failure).to_string();
        assert!(message.contains("http://127.0.0.1:7070") && message.contains("UnknownCA"), "{message}");
    }

    #[test]
    fn an_error_under_http2_is_the_reason_given() {
        let closed = tonic::Status::from_error(Box::new(Cause(
            "transport error",
            Some(Box::new(Cause("operation was canceled", Some(Box::new(Cause("connection closed", None)))))),
        )));
        let seen = Seen { io_error: Some("received fatal alert: UnknownCA".into()), ..HEARD };
        let failure = explain(&closed, TIMEOUT, &seen);
        assert_eq!(failure, Failure::ConnectionLost("received fatal alert: UnknownCA".into()));
        let message = attempt().failure(&failure).to_string();
        assert!(message.ends_with("UnknownCA (the coordinator does not accept this client certificate: is it signed by the coordinator's CA? (--tls-cert))"), "{message}");
        let expired = Failure::ConnectionLost("received fatal alert: CertificateExpired".into());
        assert!(attempt().failure(&expired).to_string().contains("this client certificate has expired"));
    }

    #[test]
    fn answers_from_the_coordinator_keep_their_message() {
        let status = tonic::Status::not_found("no job abc");
        let message = attempt().failure(&explain(&status, TIMEOUT, &HEARD)).to_string();
        assert_eq!(message, "facectl status: http://127.0.0.1:7070 answered: no job abc");
        let status = tonic::Status::unauthenticated("the bearer token is not valid");
        let message = attempt().failure(&explain(&status, TIMEOUT, &HEARD)).to_string();
        assert!(message.ends_with("refused the call: unauthenticated: the bearer token is not valid"), "{message}");
    }

    #[test]
    fn chains_drop_repeated_text() {
        let inner = Cause("invalid peer certificate: UnknownIssuer", None);
        let outer = Cause("tls: invalid peer certificate: UnknownIssuer", Some(Box::new(inner)));
        let top = Cause("transport error", Some(Box::new(outer)));
        assert_eq!(chain(&top), "transport error: tls: invalid peer certificate: UnknownIssuer");
    }
}

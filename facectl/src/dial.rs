//! How facectl reaches the coordinator: TCP, then TLS when the URL is https, done here rather
//! than inside tonic so that a failed call can say why. The connection notes when the
//! coordinator last sent a byte (silence for `--timeout` means no answer: frozen, or the network
//! silently gone, rather than a closed connection) and the first error under HTTP/2, such as
//! the TLS alert a coordinator sends when it refuses the client's certificate (tonic reports
//! only "connection closed").

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;
use tonic::codegen::http::Uri;

/// What the connections of one [`Dialer`] saw.
#[derive(Clone, Debug)]
pub struct Observed {
    since: Instant,
    /// When the last byte arrived, in milliseconds after `since`.
    heard_ms: Arc<AtomicU64>,
    /// The first read or write error, as text (its source chain included).
    error: Arc<Mutex<Option<String>>>,
}

/// Starts the clock: nothing heard yet, no error.
impl Default for Observed {
    fn default() -> Self {
        Self { since: Instant::now(), heard_ms: Arc::new(AtomicU64::new(0)), error: Arc::default() }
    }
}

impl Observed {
    fn heard(&self) {
        self.heard_ms.store(self.since.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn failed(&self, error: &std::io::Error) {
        if let Ok(mut first) = self.error.lock() {
            first.get_or_insert_with(|| crate::connection::chain(error));
        }
    }

    /// How long nothing has come from the coordinator.
    pub fn silent_for(&self) -> Duration {
        self.since.elapsed().saturating_sub(Duration::from_millis(self.heard_ms.load(Ordering::Relaxed)))
    }

    /// The first I/O error under HTTP/2, if any.
    pub fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }
}

/// Dials the URL's host and port; with `tls`, runs the handshake for `server_name`.
#[derive(Clone)]
pub struct Dialer {
    pub tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    pub observed: Observed,
}

impl tower_service::Service<Uri> for Dialer {
    type Response = TokioIo<Connection>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (tls, observed) = (self.tls.clone(), self.observed.clone());
        Box::pin(async move {
            let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("no host in {uri}"));
            let host = uri.host().ok_or_else(invalid)?.trim_start_matches('[').trim_end_matches(']').to_string();
            let port = uri.port_u16().unwrap_or(80);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            observed.heard();
            let (stream, first) = match tls {
                None => (Stream::Plain(tcp), Vec::new()),
                Some((config, name)) => {
                    // An alert is the coordinator's answer, noted as the connection's failure; a
                    // certificate this client does not trust is its own refusal to connect.
                    let connected = TlsConnector::from(config).connect(name, tcp).await;
                    let mut tls = Box::new(connected.inspect_err(|e| {
                        if is_alert(e) {
                            observed.failed(e)
                        }
                    })?);
                    let first = first_bytes(&mut tls).await.inspect_err(|e| observed.failed(e))?;
                    (Stream::Tls(tls), first)
                }
            };
            observed.heard();
            Ok(TokioIo::new(Connection { stream, first, observed }))
        })
    }
}

/// How long a TLS connection waits for the coordinator's first bytes before the client speaks.
const FIRST_BYTES: Duration = Duration::from_secs(5);

/// Waits for the coordinator's first bytes (its HTTP/2 SETTINGS) before the client sends any.
/// In TLS 1.3 a server judges the client's certificate after the client thinks the handshake is
/// done; had the client already sent its request, the server would close on unread bytes, the
/// kernel would answer with a reset, and the reset would overtake the alert that says why. Silence
/// past [`FIRST_BYTES`] is left to the call's own timeout.
async fn first_bytes(tls: &mut TlsStream<TcpStream>) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut buffer = vec![0u8; 16 * 1024];
    match tokio::time::timeout(FIRST_BYTES, tls.read(&mut buffer)).await {
        Err(_elapsed) => Ok(Vec::new()),
        Ok(Err(e)) => Err(e),
        Ok(Ok(0)) => Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the coordinator closed the connection after the TLS handshake",
        )),
        Ok(Ok(n)) => {
            buffer.truncate(n);
            Ok(buffer)
        }
    }
}

/// A TLS alert received from the coordinator.
fn is_alert(error: &std::io::Error) -> bool {
    let rustls = error.get_ref().and_then(|inner| inner.downcast_ref::<tokio_rustls::rustls::Error>());
    matches!(rustls, Some(tokio_rustls::rustls::Error::AlertReceived(_)))
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// One connection, noting what it saw in its [`Observed`].
pub struct Connection {
    stream: Stream,
    /// Bytes read before the connection was handed over (see [`first_bytes`]), served first.
    first: Vec<u8>,
    observed: Observed,
}

impl Connection {
    fn note<T>(&self, polled: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        if let Poll::Ready(Err(e)) = &polled {
            self.observed.failed(e);
        }
        polled
    }
}

impl AsyncRead for Connection {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if !self.first.is_empty() {
            let n = self.first.len().min(buf.remaining());
            buf.put_slice(&self.first[..n]);
            self.first.drain(..n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.observed.heard();
        }
        self.note(polled)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, data),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        };
        self.note(polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        };
        self.note(polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn dial(observed: &Observed) -> (Connection, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri: Uri = format!("http://{}", listener.local_addr().unwrap()).parse().unwrap();
        let mut dialer = Dialer { tls: None, observed: observed.clone() };
        let (connected, accepted) = tokio::join!(tower_service::Service::call(&mut dialer, uri), listener.accept());
        (connected.unwrap().into_inner(), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn bytes_received_end_the_silence_and_errors_are_kept() {
        let observed = Observed::default();
        let (mut client, mut server) = dial(&observed).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(observed.silent_for() >= Duration::from_millis(50));
        server.write_all(b"x").await.unwrap();
        client.read_exact(&mut [0u8; 1]).await.unwrap();
        assert!(observed.silent_for() < Duration::from_millis(50));
        assert_eq!(observed.error(), None);
        // The peer resets the connection (linger 0: a reset, not a blocking close): the first
        // error is kept.
        #[allow(deprecated)]
        server.set_linger(Some(Duration::ZERO)).unwrap();
        drop(server);
        let mut buffer = [0u8; 8];
        while client.read(&mut buffer).await.is_ok_and(|n| n > 0) {}
        let _ = client.write_all(b"more").await;
        let _ = client.read(&mut buffer).await;
        assert!(observed.error().is_some_and(|e| e.contains("reset")), "{:?}", observed.error());
    }
}

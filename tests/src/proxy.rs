//! A TCP proxy on 127.0.0.1 between real processes, for network faults: it can add latency to
//! every chunk it forwards, cut every connection and refuse new ones (an outage), and come back.
//! Kernel fault injection (`tc netem`) needs the sch_netem module, which this kind of machine may
//! not have; a user-space proxy works everywhere and faults exactly the traffic it carries.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Faults {
    down: AtomicBool,
    delay_ms: AtomicU64,
    /// Connections accepted and forwarded so far.
    accepted: AtomicU64,
    /// Chunks forwarded with the added latency.
    delayed: AtomicU64,
    /// Bytes forwarded from the target back to the clients: what a client read through us.
    served: AtomicU64,
    /// Live connections (both halves), so an outage can cut them.
    open: Mutex<Vec<TcpStream>>,
}

pub struct Proxy {
    pub port: u16,
    faults: Arc<Faults>,
}

impl Proxy {
    /// Forwards 127.0.0.1:<port> to `target` (host:port) until dropped (the thread leaks with the test).
    pub fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let faults = Arc::new(Faults::default());
        let shared = faults.clone();
        let target = target.to_string();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if shared.down.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                {
                    let mut open = shared.open.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                pump(client.try_clone().unwrap(), server.try_clone().unwrap(), shared.clone(), false);
                pump(server, client, shared.clone(), true);
            }
        });
        Self { port, faults }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Cuts every connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.faults.down.store(true, Ordering::SeqCst);
        for stream in self.faults.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.faults.down.store(false, Ordering::SeqCst);
    }

    /// Connections accepted and forwarded so far (a reconnect after a cut adds to it).
    pub fn accepted(&self) -> u64 {
        self.faults.accepted.load(Ordering::SeqCst)
    }

    /// Chunks forwarded with the added latency so far.
    pub fn delayed(&self) -> u64 {
        self.faults.delayed.load(Ordering::SeqCst)
    }

    /// Bytes the target sent back to the clients so far (responses, headers included).
    pub fn served(&self) -> u64 {
        self.faults.served.load(Ordering::SeqCst)
    }

    /// Latency added to every chunk forwarded in either direction.
    pub fn set_delay(&self, delay: Duration) {
        self.faults.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, faults: Arc<Faults>, to_client: bool) {
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let delay = faults.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                std::thread::sleep(Duration::from_millis(delay));
                faults.delayed.fetch_add(1, Ordering::SeqCst);
            }
            if faults.down.load(Ordering::SeqCst) || to.write_all(&buffer[..read]).is_err() {
                break;
            }
            if to_client {
                faults.served.fetch_add(read as u64, Ordering::SeqCst);
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

//! Binding a listening socket with an error a person can act on: the OS says only "Address
//! already in use"; this says which address and what the port was for.

use tokio::net::TcpListener;

/// Binds `address` (`host:port`) for `purpose` (e.g. "gRPC", "/metrics", "ring peers").
pub async fn bind(address: &str, purpose: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => " (another process has this port: stop it or choose another port)",
            _ => "",
        };
        std::io::Error::new(e.kind(), format!("cannot listen on {address} for {purpose}: {e}{hint}"))
    })
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_port_in_use_is_named_with_its_purpose() {
        let taken = super::bind("127.0.0.1:0", "test").await.unwrap();
        let address = taken.local_addr().unwrap().to_string();
        let error = super::bind(&address, "/metrics").await.unwrap_err().to_string();
        assert!(error.starts_with(&format!("cannot listen on {address} for /metrics: ")), "{error}");
        assert!(error.contains("another process has this port"), "{error}");
        let error = super::bind("not-an-address", "gRPC").await.unwrap_err().to_string();
        assert!(error.starts_with("cannot listen on not-an-address for gRPC: "), "{error}");
    }
}

//! `facectl bench loopback`: TCP throughput over loopback, the link the ring all-reduce bound is
//! computed from.

use std::time::Instant;

use clap::Args as ClapArgs;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::emit;
use crate::args::bounded;

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 512, value_parser = |t: &str| bounded::<usize>(t, 1..=65536))]
    megabytes: usize,
}

impl Args {
    pub async fn run(self) -> anyhow::Result<()> {
        let megabytes = self.megabytes;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let total = megabytes * 1024 * 1024;
        let reader = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await?;
            let mut buffer = vec![0u8; 1 << 20];
            let mut received = 0;
            while received < total {
                let n = socket.read(&mut buffer).await?;
                if n == 0 {
                    break;
                }
                received += n;
            }
            Ok::<usize, std::io::Error>(received)
        });
        let mut socket = tokio::net::TcpStream::connect(address).await?;
        let chunk = vec![7u8; 1 << 20];
        let started = Instant::now();
        for _ in 0..megabytes {
            socket.write_all(&chunk).await?;
        }
        socket.shutdown().await?;
        let received = reader.await??;
        let seconds = started.elapsed().as_secs_f64();
        emit(
            serde_json::json!({"bench": "loopback", "bytes": received, "seconds": seconds, "bytes_per_s": received as f64 / seconds}),
        );
        Ok(())
    }
}

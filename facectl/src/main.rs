//! `facectl`: the facetrain command line.

/// mimalloc keeps freed pages for reuse: glibc returns the large per-step tensors to the OS and
/// faults them back in every step (~13% of a flex training step at batch 100).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod certs;
mod cli;
mod connection;
mod dataset_cmd;
mod dial;
mod local;
mod local_cluster;
mod model_cmd;
mod output;
mod remote;
mod toil;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let format = match cli.global.log_format {
        cli::LogFormat::Json => "json",
        cli::LogFormat::Text => "text",
    };
    facetrain_telemetry::init_logging(format, &cli.global.log);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(cli::dispatch(cli));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! `facectl`: the facetrain command line. The commands live in the library; this parses the
//! arguments, sets up logging and the runtime, and maps the result to the exit code
//! (`facectl::exit`: 1 failed, 3 coordinator unreachable, 4 not authenticated; clap exits with 2
//! on a usage error before anything runs).

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use facectl::cli::{Cli, Command, dispatch};
use facectl::output::Format;

/// mimalloc keeps freed pages for reuse: glibc returns the large per-step tensors to the OS and
/// faults them back in every step (~13% of a flex training step at batch 100).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(message) = cli.check_output() {
        <Cli as clap::CommandFactory>::command().error(clap::error::ErrorKind::ArgumentConflict, message).exit();
    }
    facetrain_telemetry::init_logging(cli.global.log_format.name(), &cli.global.log);
    match run(cli.command, cli.global.output) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(facectl::exit::code_of(&error))
        }
    }
}

fn run(command: Command, format: Format) -> anyhow::Result<()> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(dispatch(command, format))
}

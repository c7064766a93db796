//! Command-line grammar and dispatch.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::args::{bounded, widen};
use crate::output::Output;
use crate::{local, model, remote, toil};

#[derive(Parser, Debug)]
#[command(name = "facectl", version, about = "Train, evaluate and operate facetrain face-recognition jobs")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug)]
pub struct GlobalArgs {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "FACETRAIN_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter (RUST_LOG syntax); quiet by default.
    #[arg(long, global = true, env = "RUST_LOG", default_value = "warn")]
    pub log: String,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// As the telemetry crate names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a job on this machine (no coordinator, no cloud account).
    Local(local::Args),
    /// Accuracy of a checkpoint on a dataset, per class, with the confusion matrix.
    Eval(model::EvalArgs),
    /// Top-k names with probabilities for each image.
    Predict(model::PredictArgs),
    /// Submit a job to the coordinator; prints its id.
    Submit(remote::SubmitArgs),
    /// One job's state (`--output json` for programs).
    Status(remote::StatusArgs),
    /// Every job the coordinator knows.
    List(remote::ListArgs),
    /// Follow a job's progress until it ends.
    Watch(remote::WatchArgs),
    /// Cancel a job (a manual action: counted as toil).
    Cancel(remote::CancelArgs),
    /// The toil ledger: incidents, automated vs manual recoveries, MTTR, hands-on time, toil ratio.
    Toil(toil::Args),
    /// Dataset tools.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// TLS certificates and an API token for a cluster.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Measure step time and input-pipeline throughput (prints `RESULT {json}` lines).
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
}

#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// A private CA, coordinator/worker/client certificates and an API token, in one folder.
    Create {
        dir: PathBuf,
        /// Extra names (DNS or IP) on the coordinator's certificate, e.g. its Service name.
        #[arg(long = "coordinator-name")]
        coordinator_names: Vec<String>,
        /// Validity of the leaf certificates in days (the CA gets twice as long).
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::certs::MAX_DAYS)))]
        days: u32,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DatasetCommand {
    /// Validate a dataset CSV and every image it names; print counts per class.
    Check {
        csv: String,
        /// Side of the model's input in pixels (as model.image_size).
        #[arg(long, default_value_t = 96, value_parser = image_size)]
        image_size: u32,
        /// Report bad rows instead of stopping at the first.
        #[arg(long)]
        skip_bad_rows: bool,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Write a small generated face-like dataset (deterministic) with train.csv and validate.csv.
    Synth {
        dir: PathBuf,
        #[arg(long, default_value_t = 40, value_parser = per_person)]
        train_per_person: u32,
        #[arg(long, default_value_t = 10, value_parser = per_person)]
        validate_per_person: u32,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value_t = 96, value_parser = image_size)]
        image_size: u32,
    },
}

fn image_size(text: &str) -> Result<u32, String> {
    bounded(text, widen(facetrain_worker::data::image::MODEL_SIDES))
}

fn per_person(text: &str) -> Result<u32, String> {
    bounded(text, widen(facetrain_worker::data::synth::PER_PERSON))
}

pub async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Local(args) => args.run().await,
        Command::Eval(args) => args.run().await,
        Command::Predict(args) => args.run().await,
        Command::Dataset(DatasetCommand::Check { csv, image_size, skip_bad_rows, output }) => {
            crate::dataset_cmd::check(&csv, image_size as usize, skip_bad_rows, output).await
        }
        Command::Dataset(DatasetCommand::Synth { dir, train_per_person, validate_per_person, seed, image_size }) => {
            crate::dataset_cmd::synth(&dir, train_per_person as usize, validate_per_person as usize, seed, image_size)
        }
        Command::Bench(command) => crate::bench::run(command).await,
        Command::Certs(CertsCommand::Create { dir, coordinator_names, days, force }) => {
            crate::certs::create(&dir, &coordinator_names, days, force)
        }
        Command::Toil(args) => args.run().await,
        Command::Submit(args) => args.run().await,
        Command::Status(args) => args.run().await,
        Command::List(args) => args.run().await,
        Command::Watch(args) => args.run().await,
        Command::Cancel(args) => args.run().await,
    }
}

//! Command-line grammar and dispatch.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a job on this machine (no coordinator, no cloud account).
    Local {
        job: PathBuf,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Override training.max_steps.
        #[arg(long)]
        max_steps: Option<u64>,
    },
    /// Accuracy of a checkpoint on a dataset, per class, with the confusion matrix.
    Eval {
        /// A checkpoint file (.ftck) or a checkpoint folder (its newest good checkpoint).
        #[arg(long)]
        checkpoint: String,
        #[arg(long)]
        csv: String,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Top-k names with probabilities for each image.
    Predict {
        #[arg(long)]
        checkpoint: String,
        #[arg(long, default_value_t = 3)]
        top_k: usize,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Dataset tools.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Measure step time and input-pipeline throughput (prints `RESULT {json}` lines).
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
}

#[derive(Subcommand, Debug)]
pub enum DatasetCommand {
    /// Validate a dataset CSV and every image it names; print counts per class.
    Check {
        csv: String,
        #[arg(long, default_value_t = 96)]
        image_size: usize,
        /// Report bad rows instead of stopping at the first.
        #[arg(long)]
        skip_bad_rows: bool,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Write a small generated face-like dataset (deterministic) with train.csv and validate.csv.
    Synth {
        dir: PathBuf,
        #[arg(long, default_value_t = 40)]
        train_per_person: usize,
        #[arg(long, default_value_t = 10)]
        validate_per_person: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value_t = 96)]
        image_size: u32,
    },
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Local { job, output, max_steps } => crate::local::run(&job, output, max_steps).await,
        Command::Eval { checkpoint, csv, output } => crate::model_cmd::eval(&checkpoint, &csv, output).await,
        Command::Predict { checkpoint, top_k, output, images } => {
            crate::model_cmd::predict(&checkpoint, top_k, &images, output).await
        }
        Command::Dataset(DatasetCommand::Check { csv, image_size, skip_bad_rows, output }) => {
            crate::dataset_cmd::check(&csv, image_size, skip_bad_rows, output).await
        }
        Command::Dataset(DatasetCommand::Synth { dir, train_per_person, validate_per_person, seed, image_size }) => {
            crate::dataset_cmd::synth(&dir, train_per_person, validate_per_person, seed, image_size)
        }
        Command::Bench(command) => crate::bench::run(command).await,
    }
}

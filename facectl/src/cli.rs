//! The command-line grammar: the global flags, one variant per command holding that command's
//! own flags (its module defines them and its `run`), and dispatch. What each command does and
//! which flags it takes live with the command, so this file only lists them.

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::Format;
use crate::{bench, certs, dataset, local, model, remote, toil};

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
    /// What commands print on stdout: text for people, json for programs (csv: predict, metrics).
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Text, env = "FACETRAIN_OUTPUT")]
    pub output: Format,
}

impl Cli {
    /// `-o csv` on a command that has no table to print is a usage error, like a flag it lacks.
    pub fn check_output(&self) -> Result<(), String> {
        let tables = matches!(self.command, Command::Predict(_) | Command::Metrics(_));
        if self.global.output == Format::Csv && !tables {
            return Err("`-o csv` is for predict and metrics; this command prints text or json".into());
        }
        Ok(())
    }
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
    /// A checkpoint's weights for other tools (safetensors with PyTorch's names and layouts).
    Export(crate::export::ExportArgs),
    /// Submit a job to the coordinator; prints its id.
    Submit(remote::SubmitArgs),
    /// One job's state (`-o json` for programs).
    Status(remote::StatusArgs),
    /// Every job the coordinator knows.
    List(remote::ListArgs),
    /// Follow a job's progress until it ends.
    Watch(remote::WatchArgs),
    /// Cancel a job (a manual action: counted as toil).
    Cancel(remote::CancelArgs),
    /// The coordinator's workers: backends, devices, and the job each trains.
    Workers(crate::workers::WorkersArgs),
    /// A job's training curve (loss, accuracy, learning rate, step time), kept by the coordinator.
    Metrics(crate::curve::MetricsArgs),
    /// A job's timeline: submitted, started, incidents, manual actions, the end (`--follow`).
    Events(crate::events::EventsArgs),
    /// Continue a failed or cancelled job from its latest checkpoint (a manual action: counted
    /// as toil).
    Resume(remote::ResumeArgs),
    /// Delete an ended job from the coordinator (its record and metric series; checkpoints stay).
    Delete(remote::DeleteArgs),
    /// The toil ledger: incidents, automated vs manual recoveries, MTTR, hands-on time, toil ratio.
    Toil(toil::Args),
    /// Dataset tools.
    #[command(subcommand)]
    Dataset(dataset::Command),
    /// TLS certificates and an API token for a cluster.
    #[command(subcommand)]
    Certs(certs::Command),
    /// Measure step time and input-pipeline throughput (prints `RESULT {json}` lines).
    #[command(subcommand)]
    Bench(bench::Command),
    /// Shell completions: `facectl completions bash > ~/.local/share/bash-completion/completions/facectl`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Runs the command; its error is what the user reads.
pub async fn dispatch(command: Command, format: Format) -> anyhow::Result<()> {
    let output = format.plain();
    match command {
        Command::Local(args) => args.run(output).await,
        Command::Eval(args) => args.run(output).await,
        Command::Predict(args) => args.run(format).await,
        Command::Export(args) => args.run(output).await,
        Command::Submit(args) => args.run(output).await,
        Command::Status(args) => args.run(output).await,
        Command::List(args) => args.run(output).await,
        Command::Watch(args) => args.run(output).await,
        Command::Cancel(args) => args.run(output).await,
        Command::Workers(args) => args.run(output).await,
        Command::Metrics(args) => args.run(format).await,
        Command::Events(args) => args.run(output).await,
        Command::Resume(args) => args.run(output).await,
        Command::Delete(args) => args.run(output).await,
        Command::Toil(args) => args.run(output).await,
        Command::Dataset(command) => command.run(output).await,
        Command::Certs(command) => command.run(output),
        // RESULT lines: one JSON object each already.
        Command::Bench(command) => command.run().await,
        Command::Completions { shell } => {
            // Into a buffer first: clap_complete panics when its writer fails (`| head`).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "facectl", &mut script);
            match std::io::Write::write_all(&mut std::io::stdout(), &script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn completions_cover_every_command() {
        let mut script = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut <Cli as clap::CommandFactory>::command(),
            "facectl",
            &mut script,
        );
        let script = String::from_utf8(script).unwrap();
        for command in ["submit", "resume", "metrics", "events", "workers", "export", "completions"] {
            assert!(script.contains(command), "{command} missing from the bash completions");
        }
    }

    #[test]
    fn the_grammar_is_consistent() {
        // clap checks names, defaults against their parsers, and conflicts only when asked.
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_follow_the_command() {
        let cli = Cli::try_parse_from(["facectl", "list", "--log-format", "json", "--log", "debug"]).unwrap();
        assert_eq!((cli.global.log_format.name(), cli.global.log.as_str()), ("json", "debug"));
        assert!(matches!(cli.command, Command::List(_)));
    }

    #[test]
    fn one_output_flag_before_or_after_any_command() {
        for args in [["facectl", "-o", "json", "status", "j"], ["facectl", "status", "j", "--output", "json"]] {
            let cli = Cli::try_parse_from(args).unwrap();
            assert_eq!(cli.global.output, Format::Json, "{args:?}");
        }
        let cli = Cli::try_parse_from(["facectl", "submit", "job.toml", "-o", "json"]).unwrap();
        assert_eq!((cli.global.output, cli.check_output()), (Format::Json, Ok(())));
        let csv = Cli::try_parse_from(["facectl", "-o", "csv", "metrics", "j"]).unwrap();
        assert_eq!(csv.check_output(), Ok(()));
        let refused = Cli::try_parse_from(["facectl", "-o", "csv", "status", "j"]).unwrap();
        assert!(refused.check_output().unwrap_err().contains("predict and metrics"));
    }
}

//! `facectl metrics JOB`: a job's training curve from the coordinator's job store, as a table
//! with sparklines for people, or JSON or CSV for programs.

use std::fmt::Write as _;

use clap::Args;
use facetrain_proto::{pb, wire};

use crate::connection::Connection;
use crate::output::Format;
use crate::remote::Remote;

#[derive(Args, Debug)]
pub struct MetricsArgs {
    job_id: String,
    #[command(flatten)]
    remote: Remote,
}

impl MetricsArgs {
    pub async fn run(self, format: Format) -> anyhow::Result<()> {
        let mut connection = Connection::open(&self.remote, "metrics").await?;
        let mut points = Vec::new();
        let mut start_step = 0;
        loop {
            let page = pb::GetJobHistoryRequest { job_id: self.job_id.clone(), start_step, page_size: 10_000 };
            let request = connection.request(page);
            let response =
                connection.client.get_job_history(request).await.map_err(|s| connection.failed(s))?.into_inner();
            points.extend(response.points);
            if response.next_start_step == 0 {
                break;
            }
            start_step = response.next_start_step;
        }
        match format {
            Format::Json => println!("{}", serde_json::Value::Array(points.iter().map(point_json).collect())),
            Format::Csv => print!("{}", csv(&points)),
            Format::Text => print!("{}", table(&points)),
        }
        Ok(())
    }
}

const COLUMNS: &str =
    "step,unix_ms,train_loss,train_accuracy,val_accuracy,learning_rate,step_seconds,samples_per_second,workers";

fn point_json(p: &pb::HistoryPoint) -> serde_json::Value {
    serde_json::json!({
        "step": p.step,
        "unix_ms": wire::unix_ms(p.time.as_ref()),
        "train_loss": p.train_loss,
        "train_accuracy": p.train_accuracy,
        "val_accuracy": p.val_accuracy,
        "learning_rate": p.learning_rate,
        "step_seconds": wire::seconds(p.step_time.as_ref()).unwrap_or(0.0),
        "samples_per_second": p.samples_per_second,
        "workers": p.workers,
    })
}

fn csv(points: &[pb::HistoryPoint]) -> String {
    let mut out = format!("{COLUMNS}\n");
    for p in points {
        let val = p.val_accuracy.map_or(String::new(), |v| v.to_string());
        let seconds = wire::seconds(p.step_time.as_ref()).unwrap_or(0.0);
        let _ = writeln!(
            out,
            "{},{},{},{},{val},{},{seconds},{},{}",
            p.step,
            wire::unix_ms(p.time.as_ref()),
            p.train_loss,
            p.train_accuracy,
            p.learning_rate,
            p.samples_per_second,
            p.workers
        );
    }
    out
}

fn table(points: &[pb::HistoryPoint]) -> String {
    if points.is_empty() {
        return "no history yet (a point every 10 steps, at each evaluation and at the last step)\n".into();
    }
    let mut out = String::from("    step      loss  train_acc  val_acc        lr  step_s  samples/s  workers\n");
    for p in points {
        let val = p.val_accuracy.map_or("-".into(), |v| format!("{v:.3}"));
        let seconds = wire::seconds(p.step_time.as_ref()).unwrap_or(0.0);
        let _ = writeln!(
            out,
            "{:>8} {:>9.4} {:>10.3} {val:>8} {:>9.2e} {seconds:>7.3} {:>10.1} {:>8}",
            p.step, p.train_loss, p.train_accuracy, p.learning_rate, p.samples_per_second, p.workers
        );
    }
    let loss: Vec<f64> = points.iter().map(|p| p.train_loss).collect();
    let val: Vec<f64> = points.iter().filter_map(|p| p.val_accuracy).collect();
    let _ = writeln!(out, "\ntrain_loss   {}", sparkline(&loss));
    if !val.is_empty() {
        let _ = writeln!(out, "val_accuracy {}", sparkline(&val));
    }
    out
}

/// One block character per value, scaled between the values' minimum and maximum (at most 60:
/// longer series are sampled evenly, always keeping the last).
pub fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    const WIDTH: usize = 60;
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return String::new();
    }
    let picked: Vec<f64> = if finite.len() <= WIDTH {
        finite
    } else {
        (0..WIDTH).map(|i| finite[i * (finite.len() - 1) / (WIDTH - 1)]).collect()
    };
    let (low, high) = picked.iter().fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
    let span = high - low;
    picked
        .iter()
        .map(|v| if span > 0.0 { BARS[(((v - low) / span) * 7.0).round() as usize] } else { BARS[3] })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparkline_spans_the_values_and_keeps_the_last() {
        assert_eq!(sparkline(&[4.0, 3.0, 2.0, 1.0]), "█▆▃▁");
        assert_eq!(sparkline(&[0.5, 0.5]), "▄▄");
        assert_eq!(sparkline(&[]), "");
        let long: Vec<f64> = (0..1000).map(f64::from).collect();
        let line = sparkline(&long);
        assert_eq!(line.chars().count(), 60);
        assert!(line.starts_with('▁') && line.ends_with('█'), "{line}");
    }

    #[test]
    fn csv_has_a_header_and_leaves_missing_validation_empty() {
        let point = pb::HistoryPoint { step: 10, train_loss: 0.5, workers: 2, ..Default::default() };
        let text = csv(&[point]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], COLUMNS);
        assert_eq!(lines[1], "10,0,0.5,0,,0,0,0,2");
    }
}

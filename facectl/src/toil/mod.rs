//! `facectl toil`: the toil ledger of one job or of every job, from what the coordinator
//! recorded, within an optional window.

pub mod ledger;

use clap::Args as ClapArgs;
use facetrain_proto::pb;

use crate::connection::Connection;
use crate::output::{Output, print_json};
use crate::remote::Remote;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// One job; all jobs when omitted.
    job_id: Option<String>,
    /// Only incidents and actions within this window (90s, 15m, 2h, 7d; at most 3650d).
    #[arg(long, value_parser = parse_duration)]
    since: Option<u64>,
    #[command(flatten)]
    remote: Remote,
}

impl Args {
    pub async fn run(self, output: Output) -> anyhow::Result<()> {
        let mut connection = Connection::open(&self.remote, "toil").await?;
        let jobs = match &self.job_id {
            Some(id) => {
                let request = connection.request(pb::GetJobRequest { job_id: id.clone() });
                vec![connection.client.get_job(request).await.map_err(|s| connection.failed(s))?.into_inner()]
            }
            None => connection.all_jobs().await?,
        };
        let since_unix_ms = match self.since {
            Some(seconds) => {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
                now.saturating_sub(seconds.saturating_mul(1000))
            }
            None => 0,
        };
        let totals = ledger::ledger(&jobs, since_unix_ms);
        let scope = self.job_id.map_or("all jobs".to_string(), |id| format!("job {id}"));
        match output {
            Output::Json => {
                print_json(&serde_json::json!({"scope": scope, "since_unix_ms": since_unix_ms, "ledger": totals}))
            }
            Output::Text => ledger::print_text(&totals, &scope),
        }
        Ok(())
    }
}

/// The longest `--since` window: ten years.
pub const MAX_SINCE_SECONDS: u64 = 3650 * 86400;

/// `90s`, `15m`, `2h`, `7d` -> seconds, at most [`MAX_SINCE_SECONDS`].
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 =
        number.parse().map_err(|_| format!("`{text}`: expected a duration such as 90s, 15m, 2h or 7d"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        other => return Err(format!("`{text}`: unknown unit `{other}` (use s, m, h or d)")),
    };
    match number.checked_mul(scale) {
        Some(seconds) if seconds <= MAX_SINCE_SECONDS => Ok(seconds),
        _ => Err(format!("`{text}`: longer than the limit of 3650d")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert!(parse_duration("soon").unwrap_err().contains("expected a duration"));
        assert!(parse_duration("5y").unwrap_err().contains("unknown unit"));
        assert_eq!(parse_duration("3650d"), Ok(MAX_SINCE_SECONDS));
        assert!(parse_duration("3651d").unwrap_err().contains("limit of 3650d"));
        assert!(parse_duration("999999999999999999d").unwrap_err().contains("limit of 3650d"));
        assert!(parse_duration("99999999999999999999999").unwrap_err().contains("expected a duration"));
    }
}

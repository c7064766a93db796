//! Test-only fault injection, to prove that the coordinator's sample ledger catches a worker
//! that does not train what the plan says: with `FACETRAIN_TEST_FAULT=drop_sample@N` this worker
//! leaves one sample out of step N (counted from 1), with `repeat_sample@N` it trains one sample
//! twice in place of another. Never set outside tests.

use std::sync::OnceLock;

use crate::data::shard::Pick;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    DropSample(u64),
    RepeatSample(u64),
}

fn configured() -> Option<Fault> {
    static FAULT: OnceLock<Option<Fault>> = OnceLock::new();
    *FAULT.get_or_init(|| parse(&std::env::var("FACETRAIN_TEST_FAULT").ok()?))
}

fn parse(text: &str) -> Option<Fault> {
    let (kind, step) = text.split_once('@')?;
    let step = step.parse().ok()?;
    match kind {
        "drop_sample" => Some(Fault::DropSample(step)),
        "repeat_sample" => Some(Fault::RepeatSample(step)),
        _ => None,
    }
}

/// Alters this worker's picks for `step` (counted from 1) as the configured fault says.
pub fn alter_picks(picks: &mut Vec<Pick>, step: u64) {
    apply(configured(), picks, step);
}

fn apply(fault: Option<Fault>, picks: &mut Vec<Pick>, step: u64) {
    match fault {
        Some(Fault::DropSample(at)) if at == step && !picks.is_empty() => {
            tracing::warn!(step, "test fault: dropping a sample");
            picks.pop();
        }
        Some(Fault::RepeatSample(at)) if at == step && picks.len() >= 2 => {
            tracing::warn!(step, "test fault: training a sample twice");
            let last = picks.len() - 1;
            picks[last] = picks[0];
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks(n: u64) -> Vec<Pick> {
        (0..n).map(|p| Pick { position: p, epoch: 0, row: p as usize }).collect()
    }

    #[test]
    fn faults_apply_at_their_step_only() {
        let fault = parse("drop_sample@3");
        let mut at_two = picks(4);
        apply(fault, &mut at_two, 2);
        assert_eq!(at_two.len(), 4);
        let mut at_three = picks(4);
        apply(fault, &mut at_three, 3);
        assert_eq!(at_three.len(), 3);
        let mut repeated = picks(4);
        apply(parse("repeat_sample@1"), &mut repeated, 1);
        assert_eq!(repeated.iter().map(|p| p.position).collect::<Vec<_>>(), vec![0, 1, 2, 0]);
        assert_eq!(parse("nonsense"), None);
    }
}

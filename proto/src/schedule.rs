//! The learning rate at each step: constant (the tutorial), step decay, or cosine, each with an
//! optional linear warm-up. A pure function of the step, so every replica, a resumed job and the
//! coordinator's metrics agree on it without carrying any state.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// `learning_rate` throughout.
    #[default]
    Constant,
    /// `learning_rate x decay_factor^(k)` after `k x decay_every` steps.
    Step,
    /// From `learning_rate` down to `min_learning_rate` along half a cosine, ending at `max_steps`.
    Cosine,
}

/// The settings of [`rate`], as `[training]` in job.toml has them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearningRate {
    pub base: f64,
    pub schedule: Schedule,
    /// Steps of linear warm-up from `base / warmup_steps` to `base` (0: none).
    pub warmup_steps: u64,
    pub decay_every: u64,
    pub decay_factor: f64,
    pub min: f64,
    pub max_steps: u64,
}

impl LearningRate {
    /// The rate of the optimizer step that takes the model from `step` applied steps to
    /// `step + 1`.
    pub fn at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.base * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.schedule {
            Schedule::Constant => self.base,
            Schedule::Step => {
                let decays = (step / self.decay_every.max(1)).min(i32::MAX as u64) as i32;
                self.base * self.decay_factor.powi(decays)
            }
            Schedule::Cosine => {
                let span = self.max_steps.saturating_sub(self.warmup_steps).max(1) as f64;
                let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
                self.min + (self.base - self.min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(schedule: Schedule, warmup_steps: u64) -> LearningRate {
        LearningRate {
            base: 1e-3,
            schedule,
            warmup_steps,
            decay_every: 100,
            decay_factor: 0.5,
            min: 1e-5,
            max_steps: 1000,
        }
    }

    #[test]
    fn constant_is_the_base_rate_at_every_step() {
        let constant = rate(Schedule::Constant, 0);
        assert!([0, 1, 500, 999, 5000].iter().all(|&s| constant.at(s) == 1e-3));
    }

    #[test]
    fn step_decay_multiplies_by_the_factor_every_period() {
        let decay = rate(Schedule::Step, 0);
        assert_eq!((decay.at(0), decay.at(99)), (1e-3, 1e-3));
        assert_eq!((decay.at(100), decay.at(199)), (5e-4, 5e-4));
        assert_eq!(decay.at(350), 1.25e-4);
    }

    #[test]
    fn cosine_falls_from_the_base_to_the_floor_at_max_steps_after_the_warm_up() {
        let cosine = rate(Schedule::Cosine, 100);
        assert_eq!(cosine.at(0), 1e-5, "warm-up starts at base / warmup_steps");
        assert_eq!(cosine.at(49), 5e-4);
        assert_eq!(cosine.at(100), 1e-3, "the peak right after the warm-up");
        let middle = cosine.at(550);
        assert!((middle - (1e-5 + 1e-3) / 2.0).abs() < 1e-12, "{middle}");
        assert!((cosine.at(1000) - 1e-5).abs() < 1e-15 && cosine.at(5000) == cosine.at(1000), "the floor stays");
        let falling: Vec<f64> = (100..=1000).step_by(50).map(|s| cosine.at(s)).collect();
        assert!(falling.windows(2).all(|w| w[1] < w[0]), "{falling:?}");
    }
}

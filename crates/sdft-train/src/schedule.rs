//! Learning-rate schedules. The paper uses HF Trainer's cosine schedule with no
//! warmup (`get_cosine_schedule_with_warmup`, half a cycle).

/// The shape of the schedule after warmup.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    Constant,
    Linear,
    Cosine,
}

crate::names::named_value!(Decay, "lr_scheduler");

/// A learning-rate schedule over optimizer steps `0..total_steps`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LrSchedule {
    pub peak: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
    pub decay: Decay,
}

impl LrSchedule {
    pub fn cosine(peak: f64, warmup_steps: usize, total_steps: usize) -> Self {
        LrSchedule {
            peak,
            warmup_steps,
            total_steps,
            decay: Decay::Cosine,
        }
    }

    pub fn linear(peak: f64, warmup_steps: usize, total_steps: usize) -> Self {
        LrSchedule {
            peak,
            warmup_steps,
            total_steps,
            decay: Decay::Linear,
        }
    }

    pub fn constant(peak: f64) -> Self {
        LrSchedule {
            peak,
            warmup_steps: 0,
            total_steps: 0,
            decay: Decay::Constant,
        }
    }

    /// The learning rate at optimizer step `step` (0-based), as HF's schedulers
    /// compute it: linear warmup from 0, then the decay down to 0 at `total_steps`.
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.peak * step as f64 / self.warmup_steps.max(1) as f64;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        match self.decay {
            Decay::Constant => self.peak,
            Decay::Linear => self.peak * (1.0 - progress).max(0.0),
            Decay::Cosine => self.peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_matches_hf_values() {
        // HF get_cosine_schedule_with_warmup(num_warmup_steps=0, num_training_steps=10),
        // lr 1e-4: step 5 -> 5e-5, step 2 -> 1e-4 * 0.5 * (1 + cos(0.2 pi)) = 9.0451e-5.
        let s = LrSchedule::cosine(1e-4, 0, 10);
        assert!((s.lr(5) - 5e-5).abs() < 1e-12);
        assert!((s.lr(2) - 9.045084971874737e-5).abs() < 1e-12);
        let w = LrSchedule::cosine(1e-4, 4, 14);
        assert!((w.lr(2) - 5e-5).abs() < 1e-12);
        assert!((w.lr(4) - 1e-4).abs() < 1e-12);
        assert!((LrSchedule::linear(1.0, 0, 4).lr(1) - 0.75).abs() < 1e-12);
    }
}

//! The teacher: the frozen seed on the generation kernels, scoring the
//! student's answers after the demonstration-conditioned prompt.

use std::path::Path;

use sdft_model::backend::{default_device, DefaultBackend};
use sdft_model::{Engine, Model};

use crate::Result;

/// The seed model (no adapter), loaded once for the run.
pub(crate) struct TeacherModel {
    pub engine: Engine<DefaultBackend>,
}

impl TeacherModel {
    pub fn load(model: &Path) -> Result<Self> {
        let model = Model::<DefaultBackend>::load(model, &Default::default(), &default_device())?;
        Ok(TeacherModel {
            engine: Engine::new(model, 1),
        })
    }

    /// The teacher's log-probabilities for each item's continuation after its
    /// prompt, all rows laid end to end (`[Σ continuation lengths, vocab]`),
    /// in item order.
    pub fn rows(&self, items: &[(&[u32], &[u32])]) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        for (prompt, continuation) in items {
            for row in self.engine.next_token_logprobs_ids(prompt, continuation)? {
                out.extend_from_slice(&row);
            }
        }
        Ok(out)
    }
}

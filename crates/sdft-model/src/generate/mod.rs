//! Text generation and scoring: the [`Engine`] implements
//! [`sdft_core::Generator`] and [`sdft_core::Scorer`] for a loaded model.

mod distributions;
mod engine;
pub mod sampler;
mod score;
mod steps;
pub mod stop;

pub use engine::Engine;
pub use score::ScoreCounts;

//! One module per subcommand group.

pub mod data;
pub mod data_export;
pub mod distill;
pub mod eval;
pub mod generate;
pub mod model;
pub mod objective;
pub mod pipeline;
pub mod progress;
pub mod report;
pub mod sampling;
pub mod served;
pub mod template;
pub mod train;
pub mod version;

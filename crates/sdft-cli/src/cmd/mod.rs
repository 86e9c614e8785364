//! One module per subcommand group.

pub mod data;
pub mod generate;
pub mod model;
pub mod sampling;
pub mod template;
pub mod version;

//! One module per subcommand group.

pub mod data;
pub mod model;
pub mod template;
pub mod version;

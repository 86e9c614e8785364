//! One module per subcommand group.

pub mod data;
pub mod template;
pub mod version;

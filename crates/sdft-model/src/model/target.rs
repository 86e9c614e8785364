//! The projections of a block that adapters sit on, by their PEFT names.

/// A projection an adapter can sit on, in layer order. Its PEFT name
/// ([`Target::name`]) is what configs, `adapter_config.json` and tensor names use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl Target {
    /// Every target, in layer order.
    pub const ALL: [Target; 7] = [
        Target::Q,
        Target::K,
        Target::V,
        Target::O,
        Target::Gate,
        Target::Up,
        Target::Down,
    ];

    /// The module name PEFT uses for Llama (`q_proj`, ..., `down_proj`).
    pub const fn name(self) -> &'static str {
        match self {
            Target::Q => "q_proj",
            Target::K => "k_proj",
            Target::V => "v_proj",
            Target::O => "o_proj",
            Target::Gate => "gate_proj",
            Target::Up => "up_proj",
            Target::Down => "down_proj",
        }
    }

    /// The target whose PEFT name is `name`, if any.
    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether the projection is in the MLP (`gate`, `up`, `down`) rather than in
    /// self-attention.
    pub const fn is_mlp(self) -> bool {
        matches!(self, Target::Gate | Target::Up | Target::Down)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

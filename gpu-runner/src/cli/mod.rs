//! One module per subcommand: its clap arguments and its handler.

pub mod bench;
pub mod new_teacher_model;
pub mod score;
pub mod teacher_parity;

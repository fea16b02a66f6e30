//! One module per subcommand.

pub mod sign;
pub mod verify;

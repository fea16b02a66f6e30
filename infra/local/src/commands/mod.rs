//! One module per subcommand.

pub mod inspect;
pub mod sign;
pub mod verify;

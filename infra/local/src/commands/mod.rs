//! One module per subcommand.

pub mod demo;
pub mod events;
pub mod inspect;
pub mod message;
pub mod redrive;
pub mod register_webhook;
pub mod send;
pub mod serve;
pub mod sign;
pub mod simulator;
pub mod verify;

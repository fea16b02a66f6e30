//! One module per subcommand.

pub mod batch;
pub mod cost;
pub mod demo;
pub mod fixtures;
pub mod inspect;
pub mod message;
pub mod optouts;
pub mod post_callbacks;
pub mod redrive;
pub mod register_webhook;
pub mod serve;
pub mod sign;
pub mod simulator;
pub mod verify;

//! Everything about Sinch itself, and nothing about AWS: the webhook signature scheme (verify and
//! sign), the callback types (Conversation and SMS), and the REST client.
//!
//! Kept free of AWS and Lambda types so it can be reused by any Rust service that receives Sinch
//! callbacks, and so its tests run without any infrastructure.

#![warn(missing_docs)]

pub mod callback;
mod channel;
#[cfg(feature = "client")]
pub mod client;
mod open_enum;
pub mod signature;

pub use channel::Channel;

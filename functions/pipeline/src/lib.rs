//! Our pipeline between Sinch and AWS: the domain both Lambdas share.
//!
//! - [`envelope`]: how an accepted callback is written to the queue, and read back.
//! - [`queue`]: where envelopes go (a trait; SQS and in-memory implementations).
//! - [`config`]: reading settings from the environment, failing with one clear line.
//! - [`clock`]: the time, injectable so tests can stand anywhere in it.

pub mod clock;
pub mod config;
pub mod envelope;
pub mod queue;

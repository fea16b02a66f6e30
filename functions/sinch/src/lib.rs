//! Everything about Sinch itself, and nothing about AWS: the webhook signature scheme (verify and
//! sign), and, as the pipeline grows, the callback types and the REST client.
//!
//! Kept free of AWS and Lambda types so it can be reused by any Rust service that receives Sinch
//! callbacks, and so its tests run without any infrastructure.

pub mod signature;

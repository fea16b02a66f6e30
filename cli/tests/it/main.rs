//! The integration tests of `cli`, in one binary (one link of the dependencies, not one per
//! file): each module is what was a test file.

mod common;
mod cost;
mod demo;
mod fixtures;
mod inspect;
mod least_privilege;
mod messages;
mod operations;
mod optouts;
mod outage;
mod scale;
mod serve;
mod serve_config;
mod server;
mod sign_verify;

//! The integration tests of `api`, in one binary (one link of the dependencies, not one per
//! file): each module is what was a test file.

mod common;
mod erasure;
mod guards;
mod idempotency;
mod optouts;
mod routes;
mod scale;
mod validation;

//! The integration tests of `receiver`, in one binary (one link of the dependencies, not one per
//! file): each module is what was a test file.

mod common;
mod receiver_table;
mod sqs;

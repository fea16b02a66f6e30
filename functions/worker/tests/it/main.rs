//! The integration tests of `worker`, in one binary (one link of the dependencies, not one per
//! file): each module is what was a test file.

mod batch;
mod common;
mod dynamodb_calls;
mod exactly_once;
mod fan_out;
mod field_for_field;
mod leaving;
mod outbound;
mod privacy;
mod reply_rules;

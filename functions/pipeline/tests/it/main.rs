//! The integration tests of `pipeline`, in one binary (one link of the dependencies, not one per
//! file): each module is what was a test file.

mod handlers;
mod hook_tests;
mod reply_rules;
mod secrets;
mod send_once;
mod store_contract;
mod store_edges;
mod store_tally;
mod table_definition;

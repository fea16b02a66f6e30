//! The integration tests of `publisher`, in one binary (one link of the dependencies, not one per
//! file): each module is what was a test file.

mod events;
mod put_events;

//! The integration tests of `sinch`, in one binary (one link of the dependencies, not one per
//! file): each module is what was a test file.

mod callbacks;
mod client;

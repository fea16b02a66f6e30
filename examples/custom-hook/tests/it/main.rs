//! The integration tests of `custom-hook`, in one binary (one link of the dependencies, not one per
//! file): each module is what was a test file.

mod custom_hook;

//! What every Lambda stands on, and no more: the receiver links this and the Sinch protocol
//! alone (no DynamoDB, Scheduler, EventBridge or SSM client); the rest of the domain is
//! `pipeline`'s, which re-exports these modules under the same names.
//!
//! | module | what |
//! |---|---|
//! | [`config`] | reading settings from the environment, failing with one clear line |
//! | [`aws`] | the AWS SDK configuration, with one endpoint for local runs |
//! | [`secrets`] | secrets from AWS Secrets Manager when their ARN is configured |
//! | [`queue`] | where envelopes go (a trait; SQS and in-memory implementations) |
//! | [`metrics`] | CloudWatch Embedded Metric Format lines |
//! | [`clock`] | the time, injectable so tests can stand anywhere in it, and Lambda deadlines |

#![warn(missing_docs)]

pub mod aws;
pub mod clock;
pub mod config;
pub mod metrics;
pub mod queue;
pub mod secrets;

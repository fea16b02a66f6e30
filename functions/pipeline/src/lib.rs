//! Our pipeline between Sinch and AWS: the domain every Lambda shares (receiver, worker,
//! messages API, publisher), in the order a callback meets it.
//!
//! | module | what |
//! |---|---|
//! | [`envelope`] | how an accepted callback (or a send job) is written to the queue, and read back |
//! | [`queue`] | where envelopes go (a trait; SQS and in-memory implementations) |
//! | [`process`] | one queued callback, start to finish, and which failures are worth a retry |
//! | [`idempotency`] | the keys that make a callback "the same" for the business |
//! | [`jobs`] | the jobs the messages API queues and the worker runs (sends, a batch's fan-out and cancel) |
//! | [`handlers`] | what is done with delivery reports, inbound messages and sends of the messages API |
//! | [`hook`] | the team's own logic inside the worker (a trait; the reply policy is the default) |
//! | [`reply`] | the reply policy (keywords, opt-out, default reply) |
//! | [`send_rules`] | whether a message may go now (opt-out, WhatsApp's window), at the door and just before it leaves |
//! | [`schedule`] | work due later (`send_at`, quiet hours, a batch's fan-out): SQS delays and EventBridge Scheduler in AWS, in memory locally |
//! | [`quiet_hours`] | holding a message until quiet hours end in the recipient's time zone |
//! | [`pacing`] | sends at the configured rate per Sinch API across every worker, with a fast lane |
//! | [`sms_parts`] | an SMS text's encoding (GSM-7, UCS-2) and parts |
//! | [`ledger`] | send once: every send is recorded before it leaves and never repeated once Sinch took it |
//! | [`status`] | delivery status that only moves forward |
//! | [`store`] | where state lives (a trait; in-memory, and DynamoDB in AWS), and its items as changes see them |
//! | [`sinch_config`] | the Sinch client's settings from the environment (the worker's and the messages API's) |
//! | [`events`] | the domain events every committed change makes (for EventBridge) |
//! | [`metrics`] | CloudWatch Embedded Metric Format lines |
//! | [`config`] | reading settings from the environment, failing with one clear line |
//! | [`secrets`] | secrets from AWS Secrets Manager when their ARN is configured |
//! | [`aws`] | the AWS SDK configuration, with one endpoint for local runs |
//! | [`clock`] | the time, injectable so tests can stand anywhere in it, and Lambda deadlines |

#![warn(missing_docs)]

/// The queued form of a callback (its own crate, so the fuzz targets need nothing else).
pub use envelope;
/// What every Lambda stands on (its own crate, so that the receiver links nothing else).
pub use platform::{aws, clock, config, metrics, queue, secrets};
pub mod events;
pub mod handlers;
pub mod hook;
pub mod idempotency;
pub mod jobs;
pub mod ledger;
pub mod pacing;
pub mod process;
pub mod quiet_hours;
pub mod reply;
pub mod reply_rules;
pub mod schedule;
pub mod send_rules;
pub mod sinch_config;
pub mod sms_parts;
pub mod status;
pub mod store;

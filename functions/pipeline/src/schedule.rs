//! Work due later: a send with `send_at`, one held by quiet hours, a batch's fan-out.
//!
//! A [`Due`] is a job (an envelope of ours) that must reach its lane's queue at a time. A
//! [`Scheduler`] takes it there:
//!
//! | scheduler | how | precision | limits |
//! |---|---|---|---|
//! | [`EventBridgeScheduler`] (AWS) | due within 15 minutes: SQS `DelaySeconds` on the lane's queue; later: an EventBridge Scheduler one-time schedule (`at(...)`, UTC, `ActionAfterCompletion: DELETE`) whose target sends the job to the lane's queue | 1 s with SQS; EventBridge Scheduler invokes within about a minute of the time (its documented precision) | SQS: 15 minutes; Scheduler: 10,000,000 schedules per account and Region, `CreateSchedule` 1,000 a second (both adjustable) |
//! | [`MemoryScheduler`] (the local stack, tests) | held in memory; [`MemoryScheduler::take_due`] hands over what is due, the stack's loop sends it | the loop's tick (100 ms) | the process's life |
//!
//! EventBridge Scheduler delivers a body only (an SQS target takes no message attributes), so a
//! job it delivers is wrapped as a [`ScheduledJob`]: the worker unwraps it into the same
//! envelope it would have had. Canceling removes a pending schedule; a job that fires anyway
//! (a cancel that lost the race) finds its message ended and sends nothing.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::envelope::Envelope;

/// Which of the two lanes a send goes by: one-time codes and replies go ahead of every bulk send
/// still waiting ([`crate::pacing`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// The fast lane: single sends by default.
    #[default]
    Transactional,
    /// The bulk lane: batches by default.
    Bulk,
}

impl Lane {
    /// As the API and events write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Transactional => "transactional",
            Lane::Bulk => "bulk",
        }
    }
}

/// A job due at a time.
#[derive(Debug, Clone)]
pub struct Due {
    /// Unique per job (a message's or a batch's id with a prefix): what a cancel names.
    pub name: String,
    /// Unix ms.
    pub at_ms: u64,
    /// The lane the job goes by.
    pub lane: Lane,
    /// The job.
    pub envelope: Envelope,
}

/// A job as a scheduler delivers it when it can carry a body only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledJob {
    /// The envelope's job kind (`send`, `fan_out`, ...).
    pub scheduled_job: String,
    /// The job's body (JSON text).
    pub body: String,
}

impl ScheduledJob {
    /// The envelope this delivery stands for, when `body` is one.
    pub fn unwrap(body: &str) -> Option<Envelope> {
        let job: ScheduledJob = serde_json::from_str(body).ok()?;
        Some(Envelope::job(
            &job.scheduled_job,
            job.body,
            SystemTime::now(),
        ))
    }
}

/// Why a job could not be scheduled (or unscheduled).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scheduler unavailable during {operation}: {detail}")]
pub struct ScheduleError {
    /// What was being done.
    pub operation: &'static str,
    /// What went wrong.
    pub detail: String,
}

/// Takes due jobs to their lane's queue at their time.
pub trait Scheduler: Send + Sync {
    /// Schedules `due` (again is harmless: a name is one job, scheduled once).
    fn schedule(&self, due: &Due) -> impl Future<Output = Result<(), ScheduleError>> + Send;

    /// Removes the job named `name`, if still pending.
    fn cancel(&self, name: &str) -> impl Future<Output = Result<(), ScheduleError>> + Send;
}

/// Jobs held in this process until they are due; clones share them.
#[derive(Debug, Clone, Default)]
pub struct MemoryScheduler {
    pending: Arc<Mutex<BTreeMap<String, Due>>>,
}

impl MemoryScheduler {
    /// An empty one.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Due>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes out every job due at `now_ms`, earliest first.
    pub fn take_due(&self, now_ms: u64) -> Vec<Due> {
        let mut pending = self.lock();
        let due: Vec<String> = pending
            .iter()
            .filter(|(_, due)| due.at_ms <= now_ms)
            .map(|(name, _)| name.clone())
            .collect();
        let mut taken: Vec<Due> = due.iter().filter_map(|name| pending.remove(name)).collect();
        taken.sort_by_key(|due| due.at_ms);
        taken
    }

    /// What is pending, earliest first (the console shows it).
    pub fn pending(&self) -> Vec<(String, u64, Lane)> {
        let mut pending: Vec<(String, u64, Lane)> = self
            .lock()
            .values()
            .map(|due| (due.name.clone(), due.at_ms, due.lane))
            .collect();
        pending.sort_by_key(|(_, at, _)| *at);
        pending
    }
}

impl Scheduler for MemoryScheduler {
    async fn schedule(&self, due: &Due) -> Result<(), ScheduleError> {
        self.lock().insert(due.name.clone(), due.clone());
        Ok(())
    }

    async fn cancel(&self, name: &str) -> Result<(), ScheduleError> {
        self.lock().remove(name);
        Ok(())
    }
}

/// The two lanes' queues.
#[derive(Debug, Clone)]
pub struct Lanes<Q> {
    /// The lane of one-time codes and single sends.
    pub transactional: Q,
    /// The lane of batches.
    pub bulk: Q,
}

impl<Q> Lanes<Q> {
    /// The queue of `lane`.
    pub fn of(&self, lane: Lane) -> &Q {
        match lane {
            Lane::Transactional => &self.transactional,
            Lane::Bulk => &self.bulk,
        }
    }
}

/// Whether work due at `due_ms` waits for its time (more than a second ahead of `now_ms`).
pub fn is_later(due_ms: u64, now_ms: u64) -> bool {
    due_ms > now_ms.saturating_add(1000)
}

/// Puts `due`'s job on its lane's queue now, or has `scheduler` bring it there at its time;
/// either within `timeout`. A failure's words (to log, never to answer).
pub async fn dispatch<Q: crate::queue::Queue, C: Scheduler>(
    lanes: &Lanes<Q>,
    scheduler: &C,
    due: &Due,
    now_ms: u64,
    timeout: Duration,
) -> Result<(), String> {
    if is_later(due.at_ms, now_ms) {
        return tokio::time::timeout(timeout, scheduler.schedule(due))
            .await
            .map_err(|_| "the scheduler did not confirm in time".to_owned())?
            .map_err(|e| e.to_string());
    }
    match tokio::time::timeout(timeout, lanes.of(due.lane).send(&due.envelope)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!(
            "the queue did not confirm within {} ms",
            timeout.as_millis()
        )),
    }
}

/// The fast lane's queue (the template's outbound queue).
pub const OUTBOUND_QUEUE_URL: &str = "OUTBOUND_QUEUE_URL";
/// Its ARN (EventBridge Scheduler's target).
pub const OUTBOUND_QUEUE_ARN: &str = "OUTBOUND_QUEUE_ARN";
/// The bulk lane's queue.
pub const BULK_QUEUE_URL: &str = "BULK_QUEUE_URL";
/// Its ARN.
pub const BULK_QUEUE_ARN: &str = "BULK_QUEUE_ARN";
/// The role EventBridge Scheduler assumes to deliver jobs due later.
pub const SCHEDULER_ROLE_ARN: &str = "SCHEDULER_ROLE_ARN";
/// The schedule group. Default `default`.
pub const SCHEDULE_GROUP: &str = "SCHEDULE_GROUP";

/// Where sends go in AWS: the lanes' queues and the scheduler's role and group, as the
/// template gives them to the messages API and the worker (the local stack wires its own).
#[derive(Debug, Clone)]
pub struct Dispatch {
    /// The lanes' queues.
    pub lanes: Lanes<LaneQueue>,
    /// The role EventBridge Scheduler assumes.
    pub scheduler_role_arn: String,
    /// The schedule group.
    pub schedule_group: String,
}

impl Dispatch {
    /// The lanes and the scheduler from `env`: all of them or none (`None`); half a set is
    /// refused, naming what is missing.
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &crate::config::Env<F>,
    ) -> Result<Option<Self>, crate::config::ConfigError> {
        use crate::config::ConfigError;
        let lane = |url: &'static str,
                    arn: &'static str|
         -> Result<Option<LaneQueue>, ConfigError> {
            Ok(match (env.optional(url), env.optional(arn)) {
                (Some(_), Some(arn)) => Some(LaneQueue {
                    url: env.url(url)?,
                    arn,
                }),
                (None, None) => None,
                (None, Some(_)) => return Err(ConfigError::new(url, "is not set (its ARN is)")),
                (Some(_), None) => return Err(ConfigError::new(arn, "is not set (its URL is)")),
            })
        };
        match (
            lane(OUTBOUND_QUEUE_URL, OUTBOUND_QUEUE_ARN)?,
            lane(BULK_QUEUE_URL, BULK_QUEUE_ARN)?,
            env.optional(SCHEDULER_ROLE_ARN),
        ) {
            (Some(transactional), Some(bulk), Some(role)) => Ok(Some(Self {
                lanes: Lanes {
                    transactional,
                    bulk,
                },
                scheduler_role_arn: role,
                schedule_group: env
                    .optional(SCHEDULE_GROUP)
                    .unwrap_or_else(|| "default".to_owned()),
            })),
            (None, None, None) => Ok(None),
            _ => Err(ConfigError::new(
                SCHEDULER_ROLE_ARN,
                "the lanes and the scheduler go together: set OUTBOUND_QUEUE_URL/ARN, BULK_QUEUE_URL/ARN and SCHEDULER_ROLE_ARN, or none",
            )),
        }
    }
}

/// A lane's queue, as the AWS scheduler needs it.
#[derive(Debug, Clone)]
pub struct LaneQueue {
    /// The queue's URL (for SQS).
    pub url: String,
    /// The queue's ARN (for EventBridge Scheduler's target).
    pub arn: String,
}

/// SQS delays for the next 15 minutes, EventBridge Scheduler beyond (see the module docs).
#[derive(Debug, Clone)]
pub struct EventBridgeScheduler {
    /// Creates and deletes the one-time schedules.
    pub scheduler: aws_sdk_scheduler::Client,
    /// Sends what is due within 15 minutes, with `DelaySeconds`.
    pub sqs: aws_sdk_sqs::Client,
    /// The role EventBridge Scheduler assumes to send to the queues.
    pub role_arn: String,
    /// The schedule group (`default` unless the stack names one).
    pub group: String,
    /// The transactional lane's queue.
    pub transactional: LaneQueue,
    /// The bulk lane's queue.
    pub bulk: LaneQueue,
}

/// The longest SQS delay.
pub const SQS_MAX_DELAY: Duration = Duration::from_secs(900);

impl EventBridgeScheduler {
    /// One over the SDK's configuration, for `dispatch`; `sqs` sends the delayed jobs.
    pub fn new(sdk: &aws_config::SdkConfig, sqs: aws_sdk_sqs::Client, dispatch: Dispatch) -> Self {
        Self {
            scheduler: aws_sdk_scheduler::Client::new(sdk),
            sqs,
            role_arn: dispatch.scheduler_role_arn,
            group: dispatch.schedule_group,
            transactional: dispatch.lanes.transactional,
            bulk: dispatch.lanes.bulk,
        }
    }

    fn queue(&self, lane: Lane) -> &LaneQueue {
        match lane {
            Lane::Transactional => &self.transactional,
            Lane::Bulk => &self.bulk,
        }
    }
}

fn failed(operation: &'static str, error: impl std::fmt::Display) -> ScheduleError {
    ScheduleError {
        operation,
        detail: error.to_string(),
    }
}

impl Scheduler for EventBridgeScheduler {
    async fn schedule(&self, due: &Due) -> Result<(), ScheduleError> {
        let now_ms = crate::clock::unix_millis(SystemTime::now());
        let wait = Duration::from_millis(due.at_ms.saturating_sub(now_ms));
        let queue = self.queue(due.lane);
        if wait <= SQS_MAX_DELAY {
            let mut request = self
                .sqs
                .send_message()
                .queue_url(&queue.url)
                .message_body(due.envelope.queued_body())
                .delay_seconds(i32::try_from(wait.as_secs()).unwrap_or(900));
            for (name, value) in due.envelope.attributes() {
                request = request.message_attributes(
                    name,
                    aws_sdk_sqs::types::MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(value)
                        .build()
                        .map_err(|e| failed("schedule", e))?,
                );
            }
            request
                .send()
                .await
                .map_err(|e| failed("schedule", aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
            return Ok(());
        }
        use aws_sdk_scheduler::types::{
            ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, Target,
        };
        let at =
            time::OffsetDateTime::from_unix_timestamp(i64::try_from(due.at_ms / 1000).unwrap_or(0))
                .map_err(|e| failed("schedule", e))?;
        let expression = format!(
            "at({:04}-{:02}-{:02}T{:02}:{:02}:{:02})",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        );
        let input = serde_json::to_string(&ScheduledJob {
            scheduled_job: due.envelope.job.clone().unwrap_or_default(),
            body: due.envelope.queued_body().to_owned(),
        })
        .map_err(|e| failed("schedule", e))?;
        let target = Target::builder()
            .arn(&queue.arn)
            .role_arn(&self.role_arn)
            .input(input)
            .build()
            .map_err(|e| failed("schedule", e))?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| failed("schedule", e))?;
        match self
            .scheduler
            .create_schedule()
            .name(&due.name)
            .group_name(&self.group)
            .schedule_expression(expression)
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window)
            .action_after_completion(ActionAfterCompletion::Delete)
            .target(target)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // A name is one job (a message's or a chunk's): it is scheduled already, by the
            // request this one retries.
            Err(aws_sdk_scheduler::error::SdkError::ServiceError(service))
                if service.err().is_conflict_exception() =>
            {
                Ok(())
            }
            Err(e) => Err(failed(
                "schedule",
                aws_sdk_scheduler::error::DisplayErrorContext(&e),
            )),
        }
    }

    async fn cancel(&self, name: &str) -> Result<(), ScheduleError> {
        match self
            .scheduler
            .delete_schedule()
            .name(name)
            .group_name(&self.group)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Never made (it was an SQS delay), already ran, or already gone.
            Err(aws_sdk_scheduler::error::SdkError::ServiceError(service))
                if service.err().is_resource_not_found_exception() =>
            {
                Ok(())
            }
            Err(e) => Err(failed(
                "cancel schedule",
                aws_sdk_scheduler::error::DisplayErrorContext(&e),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scheduled_delivery_is_the_job_it_stands_for() {
        let job = ScheduledJob {
            scheduled_job: "send".into(),
            body: r#"{"id":"msg_1"}"#.into(),
        };
        let envelope = ScheduledJob::unwrap(&serde_json::to_string(&job).unwrap()).unwrap();
        assert_eq!(envelope.job.as_deref(), Some("send"));
        assert_eq!(envelope.queued_body(), r#"{"id":"msg_1"}"#);
        assert!(ScheduledJob::unwrap("{not json").is_none());
        assert!(ScheduledJob::unwrap(r#"{"app_id":"a"}"#).is_none());
    }

    #[tokio::test]
    async fn the_memory_scheduler_hands_over_what_is_due_and_forgets_what_is_canceled() {
        let scheduler = MemoryScheduler::new();
        for (name, at) in [("b", 200), ("a", 100), ("c", 300)] {
            scheduler
                .schedule(&Due {
                    name: name.into(),
                    at_ms: at,
                    lane: Lane::Bulk,
                    envelope: Envelope::job("send", "{}".into(), SystemTime::now()),
                })
                .await
                .unwrap();
        }
        scheduler.cancel("c").await.unwrap();
        assert!(scheduler.take_due(99).is_empty());
        let due: Vec<String> = scheduler
            .take_due(250)
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(due, ["a", "b"]);
        assert!(scheduler.take_due(1000).is_empty(), "c was canceled");
    }
}

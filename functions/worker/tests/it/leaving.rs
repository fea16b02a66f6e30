//! The moment a send leaves is after its pacing slot: what happens while it waits (an opt-out, a
//! cancel, the start of quiet hours) is judged then, and a retry after Sinch's 429 takes a slot
//! of its own. Counted at the fake Sinch, on both stores.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pipeline::clock::Clock;
use pipeline::handlers::Handled;
use pipeline::pacing::Pacing;
use pipeline::quiet_hours::QuietHours;
use pipeline::status::Status;
use pipeline::store::{ContactKey, Finished, OptChange, Reason, SendFinish, SendResult, Store};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};
use worker::{RecordOutcome, process_batch};

use super::common::{event, fake_sinch, job_record, services};
use super::outbound::{SEND, accepted, job, reason_of, sends, state, worker_with, wrote};

/// A worker paced at `rate` sends a second on each API.
fn paced<S: Store>(
    store: S,
    sinch: &MockServer,
    rate: f64,
) -> Arc<worker::Worker<S, pipeline::queue::MemoryQueue>> {
    let mut services = services(store, sinch);
    services.pacing = Pacing::new(Some(rate), Some(rate));
    worker_with(services)
}

/// Runs one job with time to wait for its slot.
async fn leave<S: Store + 'static>(
    worker: &Arc<worker::Worker<S, pipeline::queue::MemoryQueue>>,
    id: &str,
    to: &str,
) -> RecordOutcome {
    let outcomes = process_batch(
        worker.clone(),
        event(vec![job_record(id, &job(id, to), 1)]),
        tokio::time::Instant::now() + Duration::from_secs(20),
    )
    .await;
    outcomes.into_iter().next().expect("an outcome").1
}

/// At 0.25 a second a second send waits about 4 s for its slot; the recipient says STOP 1.5 s
/// into that wait. Judged before the wait (as it was), it would leave; judged after, it ends
/// FAILED `recipient_opted_out`, unsent.
async fn an_opt_out_while_a_send_waits_for_its_slot_withholds_it<S: Store + Clone + 'static>(
    store: S,
) {
    let sinch = fake_sinch().await;
    let worker = paced(store.clone(), &sinch, 0.25);
    accepted(&store, "msg_first", "+46701110001").await;
    accepted(&store, "msg_waits", "+46701110002").await;
    assert!(matches!(
        leave(&worker, "msg_first", "+46701110001").await,
        RecordOutcome::Handled {
            handled: Handled::Outbound { .. },
            ..
        }
    ));
    let started = Instant::now();
    let waiting = {
        let worker = worker.clone();
        tokio::spawn(async move { leave(&worker, "msg_waits", "+46701110002").await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    wrote(
        &store,
        "+46701110002",
        Some(OptChange::OptOut {
            contact: ContactKey::new("WHATSAPP", "46701110002"),
            by: "01STOPWAIT".into(),
        }),
    )
    .await;
    let outcome = waiting.await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "it waited for its slot"
    );
    assert!(
        matches!(
            &outcome,
            RecordOutcome::Handled {
                handled: Handled::OutboundRefused { .. },
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(sends(&sinch, "msg_waits").await, 0, "nothing reached Sinch");
    let ended = state(&store, "msg_waits").await;
    assert_eq!(
        (ended.status.as_str(), reason_of(&ended)),
        ("FAILED", Some("recipient_opted_out"))
    );
}

/// A cancel while a send waits for its slot is a cancel (it has not left): recorded, and the
/// send ends CANCELED, unsent.
async fn a_cancel_reaches_a_send_waiting_for_its_slot<S: Store + Clone + 'static>(store: S) {
    let sinch = fake_sinch().await;
    let worker = paced(store.clone(), &sinch, 0.25);
    accepted(&store, "msg_one", "+46701110003").await;
    accepted(&store, "msg_two", "+46701110004").await;
    leave(&worker, "msg_one", "+46701110003").await;
    let waiting = {
        let worker = worker.clone();
        tokio::spawn(async move { leave(&worker, "msg_two", "+46701110004").await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let canceled = SendResult::Ended {
        status: Status::Canceled,
        reason: Reason::new("canceled", Some("canceled by its sender".into())),
    };
    let cancel = SendFinish {
        id: "msg_two",
        attempt: None,
        result: &canceled,
        at_ms: pipeline::clock::unix_millis(std::time::SystemTime::now()),
    };
    assert_eq!(
        store.finish_send(&cancel).await.unwrap(),
        Finished::Recorded,
        "not yet left: the cancel holds"
    );
    let outcome = waiting.await.unwrap();
    assert!(
        matches!(
            &outcome,
            RecordOutcome::Handled {
                handled: Handled::OutboundRefused { .. },
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(sends(&sinch, "msg_two").await, 0);
    assert_eq!(state(&store, "msg_two").await.status, Status::Canceled);
}

/// A send whose moment comes inside its quiet hours (it waited into them: here the clock says
/// 21:30 in Stockholm) is held until they end: SCHEDULED, queued again for 08:00 local, nothing
/// sent; while it waits a cancel still reaches it.
async fn quiet_hours_at_the_moment_of_leaving_hold_the_send<S: Store + Clone + 'static>(store: S) {
    let sinch = fake_sinch().await;
    let mut services = services(store.clone(), &sinch);
    // 2026-12-01 20:30 UTC: 21:30 in Stockholm (CET).
    let at = std::time::UNIX_EPOCH + Duration::from_secs(1_796_157_000);
    services.clock = Clock::Fixed(at);
    let worker = worker_with(services);
    accepted(&store, "msg_quiet", "+46701110005").await;
    let mut quiet_job = job("msg_quiet", "+46701110005");
    quiet_job.quiet_hours = Some(QuietHours {
        start: "21:00".into(),
        end: "08:00".into(),
        time_zone: None,
    });
    let outcomes = process_batch(
        worker.clone(),
        event(vec![job_record("msg_quiet", &quiet_job, 1)]),
        tokio::time::Instant::now() + Duration::from_secs(10),
    )
    .await;
    assert!(
        matches!(
            &outcomes[0].1,
            RecordOutcome::Handled {
                handled: Handled::Deferred { .. },
                ..
            }
        ),
        "{outcomes:?}"
    );
    assert_eq!(sends(&sinch, "msg_quiet").await, 0);
    let held = state(&store, "msg_quiet").await;
    assert_eq!(
        (held.status.as_str(), reason_of(&held)),
        ("SCHEDULED", Some(pipeline::send_rules::HELD))
    );
    // Due again at 08:00 Stockholm (07:00 UTC) the next morning.
    let pending = worker.scheduler.pending();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].1, 1_796_194_800_000);
    // Nothing is on record: a cancel reaches it.
    let canceled = SendResult::Ended {
        status: Status::Canceled,
        reason: Reason::new("canceled", None),
    };
    assert_eq!(
        store
            .finish_send(&SendFinish {
                id: "msg_quiet",
                attempt: None,
                result: &canceled,
                at_ms: 1_796_157_060_000,
            })
            .await
            .unwrap(),
        Finished::Recorded
    );
}

/// Answers 429 the first time, then takes it; remembers when each request came.
#[derive(Clone, Default)]
struct ThrottledOnce(Arc<Mutex<Vec<Instant>>>);

impl Respond for ThrottledOnce {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut seen = self.0.lock().unwrap();
        seen.push(Instant::now());
        if seen.len() == 1 {
            ResponseTemplate::new(429).insert_header("retry-after", "0")
        } else {
            ResponseTemplate::new(200).set_body_json(json!({"message_id": "01SENT"}))
        }
    }
}

/// A 429 means Sinch did not take it: the send goes again, in a slot of its own (at 1 a second,
/// about a second after the first), not at once (the client's own backoff here is 5 to 20 ms).
/// The bound leaves 400 ms for moto's latency to differ between the two attempts.
async fn a_retry_after_a_429_takes_a_slot_of_its_own<S: Store + Clone + 'static>(store: S) {
    let sinch = testkit::fake_sinch().await;
    let throttled = ThrottledOnce::default();
    Mock::given(method("POST"))
        .and(path(SEND))
        .respond_with(throttled.clone())
        .mount(&sinch)
        .await;
    let worker = paced(store.clone(), &sinch, 1.0);
    accepted(&store, "msg_429", "+46701110006").await;
    let outcome = leave(&worker, "msg_429", "+46701110006").await;
    assert!(
        matches!(
            &outcome,
            RecordOutcome::Handled {
                handled: Handled::Outbound { .. },
                ..
            }
        ),
        "{outcome:?}"
    );
    let seen = throttled.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one 429, then one send");
    let gap = seen[1] - seen[0];
    assert!(
        gap >= Duration::from_millis(600),
        "the retry waited for its own slot (1 / 0.95 s), not {gap:?}"
    );
    assert_eq!(state(&store, "msg_429").await.status, Status::Sent);
}

/// An erasure while a send waits for its slot: the message ends `CANCELED`
/// (`recipient_erased`) at once, and when the slot comes nothing leaves and nothing writes the
/// number back.
async fn an_erasure_while_a_send_waits_for_its_slot_withholds_it<S: Store + Clone + 'static>(
    store: S,
) {
    let sinch = fake_sinch().await;
    let worker = paced(store.clone(), &sinch, 0.25);
    accepted(&store, "msg_e1", "+46701110005").await;
    accepted(&store, "msg_e2", "+46701110006").await;
    leave(&worker, "msg_e1", "+46701110005").await;
    let waiting = {
        let worker = worker.clone();
        tokio::spawn(async move { leave(&worker, "msg_e2", "+46701110006").await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let now = pipeline::clock::unix_millis(std::time::SystemTime::now());
    let erased = store
        .erase_contact(
            &ContactKey::new("WHATSAPP", "46701110006"),
            "era_w",
            now,
            100,
        )
        .await
        .unwrap();
    assert_eq!(erased.canceled, ["msg_e2"]);
    let outcome = waiting.await.unwrap();
    assert!(
        matches!(
            &outcome,
            RecordOutcome::Handled {
                handled: Handled::OutboundRefused { .. },
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(sends(&sinch, "msg_e2").await, 0);
    let after = state(&store, "msg_e2").await;
    assert_eq!(after.status, Status::Canceled);
    assert_eq!(after.to, None, "nothing wrote the number back");
}

/// A message accepted before an erasure but made after it (a batch's chunk fanned out later):
/// the erasure's mark stops it when it would leave, and what making it wrote of the person
/// goes too.
async fn a_message_accepted_before_an_erasure_never_leaves<S: Store + Clone + 'static>(store: S) {
    let sinch = fake_sinch().await;
    let worker = paced(store.clone(), &sinch, 10.0);
    let now = pipeline::clock::unix_millis(std::time::SystemTime::now());
    let id = format!("msg_{}_3", ulid::Ulid::from_parts(now - 60_000, 7));
    store
        .erase_contact(
            &ContactKey::new("WHATSAPP", "46701110007"),
            "era_c",
            now,
            100,
        )
        .await
        .unwrap();
    // Made from its chunk after the erasure; the person wrote again since.
    accepted(&store, &id, "+46701110007").await;
    let outcome = leave(&worker, &id, "+46701110007").await;
    assert!(
        matches!(
            &outcome,
            RecordOutcome::Handled {
                handled: Handled::OutboundRefused { .. },
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(sends(&sinch, &id).await, 0);
    let after = state(&store, &id).await;
    assert_eq!(after.status, Status::Canceled);
    assert_eq!(reason_of(&after), Some(pipeline::store::RECIPIENT_ERASED));
    // What making it wrote of the person goes too (found by review: the number stayed).
    assert_eq!((after.to, after.text), (None, None), "{id}");
    // A send accepted after the erasure goes.
    let later = format!("msg_{}", ulid::Ulid::from_parts(now + 1000, 9));
    accepted(&store, &later, "+46701110007").await;
    assert!(matches!(
        leave(&worker, &later, "+46701110007").await,
        RecordOutcome::Handled {
            handled: Handled::Outbound { .. },
            ..
        }
    ));
}

/// A reply waits for its slot like any send; the person is opted out through the API, then
/// erased, while it waits: judged on the contact read again after the slot, it does not leave,
/// and nothing of theirs stays in its item. (Found by review: it was judged on the read made
/// before the wait.)
async fn a_reply_waiting_for_its_slot_meets_an_opt_out_and_an_erasure<
    S: Store + Clone + 'static,
>(
    store: S,
) {
    let sinch = fake_sinch().await;
    let worker = paced(store.clone(), &sinch, 0.25);
    accepted(&store, "msg_r1", "+46701119001").await;
    leave(&worker, "msg_r1", "+46701119001").await;
    let waiting = {
        let worker = worker.clone();
        tokio::spawn(async move {
            process_batch(
                worker,
                event(vec![super::common::record(
                    "sqs-help",
                    &super::common::inbound("01HELPIN", "46701119002", "HELP"),
                )]),
                tokio::time::Instant::now() + Duration::from_secs(20),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let now = pipeline::clock::unix_millis(std::time::SystemTime::now());
    let contact = ContactKey::new("WHATSAPP", "46701119002");
    assert!(
        store
            .set_opt_out(&pipeline::store::OptWrite {
                contact: &contact,
                opted_out: true,
                source: &pipeline::store::OptSource::Api,
                reference: "api_01WAITING",
                at_ms: now,
            })
            .await
            .unwrap()
    );
    store
        .erase_contact(&contact, "era_waiting", now, 100)
        .await
        .unwrap();
    waiting.await.unwrap();
    assert_eq!(
        sends(&sinch, "rpl_01HELPIN").await,
        0,
        "the reply did not leave"
    );
    if let Some(reply) = store
        .message_state(&pipeline::store::MessageKey::Ours("rpl_01HELPIN".into()))
        .await
        .unwrap()
    {
        assert_eq!(
            (reply.to, reply.text),
            (None, None),
            "nothing of theirs stays"
        );
    }
}

/// The person opted out on WhatsApp and was then erased on SMS, the fallback of a message made
/// after the erasure: the erasure is judged first, whatever else the message breaks, so it ends
/// `CANCELED` (`recipient_erased`) and stripped, not `FAILED` with their number kept (found by
/// review: the opt-out of the first channel was judged first).
async fn an_erasure_on_a_fallback_channel_is_judged_before_anything_else<
    S: Store + Clone + 'static,
>(
    store: S,
) {
    let sinch = fake_sinch().await;
    let worker = paced(store.clone(), &sinch, 10.0);
    let now = pipeline::clock::unix_millis(std::time::SystemTime::now());
    let id = format!("msg_{}_4", ulid::Ulid::from_parts(now - 60_000, 8));
    let to = "+46701110008";
    accepted(&store, &id, to).await;
    store
        .set_opt_out(&pipeline::store::OptWrite {
            contact: &ContactKey::new("WHATSAPP", "46701110008"),
            opted_out: true,
            source: &pipeline::store::OptSource::Api,
            reference: "api_1",
            at_ms: now - 30_000,
        })
        .await
        .unwrap();
    store
        .erase_contact(&ContactKey::new("SMS", "46701110008"), "era_f", now, 100)
        .await
        .unwrap();
    let mut with_fallback = job(&id, to);
    if let pipeline::jobs::Route::Conversation { fallback, .. } = &mut with_fallback.route {
        fallback.push("SMS".into());
    }
    let outcomes = process_batch(
        worker.clone(),
        event(vec![job_record(&id, &with_fallback, 1)]),
        tokio::time::Instant::now() + Duration::from_secs(20),
    )
    .await;
    assert!(
        matches!(
            &outcomes[0].1,
            RecordOutcome::Handled {
                handled: Handled::OutboundRefused { .. },
                ..
            }
        ),
        "{outcomes:?}"
    );
    assert_eq!(sends(&sinch, &id).await, 0);
    let after = state(&store, &id).await;
    assert_eq!(after.status, Status::Canceled);
    assert_eq!(reason_of(&after), Some(pipeline::store::RECIPIENT_ERASED));
    assert_eq!(after.to, None, "nothing of theirs stays");
}

testkit::for_both_stores!(
    an_erasure_on_a_fallback_channel_is_judged_before_anything_else,
    a_reply_waiting_for_its_slot_meets_an_opt_out_and_an_erasure,
    an_erasure_while_a_send_waits_for_its_slot_withholds_it,
    a_message_accepted_before_an_erasure_never_leaves,
    an_opt_out_while_a_send_waits_for_its_slot_withholds_it,
    a_cancel_reaches_a_send_waiting_for_its_slot,
    quiet_hours_at_the_moment_of_leaving_hold_the_send,
    a_retry_after_a_429_takes_a_slot_of_its_own,
);

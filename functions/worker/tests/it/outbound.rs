//! Sends of the messages API through the worker: counted at the fake Sinch (what it received),
//! statuses read from the store. Against the in-memory store and DynamoDB on moto_server.

use super::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use pipeline::handlers::Handled;
use pipeline::jobs::{OutboundJob, Route};
use pipeline::queue::MemoryQueue;
use pipeline::store::{
    AcceptedMessage, ContactKey, InboundRecord, MessageKey, OptChange, SendState, SinchId, Store,
};
use serde_json::json;
use sinch::client::AppMessage;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};
use worker::{RecordOutcome, Worker, process_batch};

pub(crate) const SEND: &str = "/v1/projects/p/messages:send";

pub(crate) fn job(id: &str, to: &str) -> OutboundJob {
    OutboundJob {
        id: id.into(),
        to: to.into(),
        route: Route::Conversation {
            app_id: "app-1".into(),
            channel: "WHATSAPP".into(),
            fallback: vec![],
            message: AppMessage::text("Your order shipped"),
            channel_properties: BTreeMap::new(),
            ttl_secs: None,
        },
        expires_at_ms: None,
        batch: None,
        lane: pipeline::schedule::Lane::Transactional,
        quiet_hours: None,
    }
}

pub(crate) fn worker<S: Store>(store: S, sinch: &MockServer) -> Arc<Worker<S, MemoryQueue>> {
    worker_with(services(store, sinch))
}

/// A worker over `services` (its store, clock and pacing), with in-memory lanes.
pub(crate) fn worker_with<S: Store>(
    services: pipeline::handlers::Services<S>,
) -> Arc<Worker<S, MemoryQueue>> {
    Arc::new(Worker {
        services,
        dead_letters: MemoryQueue::new("dlq"),
        lanes: pipeline::schedule::Lanes {
            transactional: MemoryQueue::new("outbound"),
            bulk: MemoryQueue::new("bulk"),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        concurrency: 4,
        metrics: pipeline::metrics::Metrics::off(),
        outbound_max_receives: 3,
        store_health: Default::default(),
    })
}

/// A message the messages API accepted, to someone who wrote a minute ago (WhatsApp's window
/// is open).
pub(crate) async fn accepted<S: Store>(store: &S, id: &str, to: &str) {
    store
        .accept_message(&AcceptedMessage {
            id: id.into(),
            channel: "WHATSAPP".into(),
            to: to.into(),
            metadata: None,
            caller: "test".into(),
            at_ms: 1_763_870_400_000,
            status: pipeline::status::Status::Accepted,
            scheduled_at_ms: None,
            batch: None,
            fallback: Vec::new(),
        })
        .await
        .unwrap();
    wrote(store, to, None).await;
}

/// `to` wrote on WhatsApp a minute ago; `opt` its opt-out change.
pub(crate) async fn wrote<S: Store>(store: &S, to: &str, opt: Option<OptChange>) {
    let now = pipeline::clock::unix_millis(std::time::SystemTime::now());
    let from = ContactKey::new("WHATSAPP", to);
    let inbound = InboundRecord {
        text_digest: None,
        id: format!("in-{to}-{now}"),
        from,
        to: "app-1".into(),
        kind: "text_message".into(),
        text: Some("hi".into()),
        media: Vec::new(),
        contact_id: None,
        conversation_id: None,
        received_at_ms: now - 60_000,
    };
    store.record_inbound(&inbound, opt.as_ref()).await.unwrap();
}

pub(crate) async fn sends(sinch: &MockServer, id: &str) -> usize {
    sinch
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| {
            r.url.path() == SEND
                && String::from_utf8_lossy(&r.body).contains(&format!("sinch-hooks:{id}"))
        })
        .count()
}

pub(crate) async fn run<S: Store + 'static>(
    worker: &Arc<Worker<S, MemoryQueue>>,
    records: Vec<serde_json::Value>,
) -> Vec<RecordOutcome> {
    process_batch(worker.clone(), event(records), deadline())
        .await
        .into_iter()
        .map(|(_, outcome)| outcome)
        .collect()
}

pub(crate) async fn state<S: Store>(store: &S, id: &str) -> pipeline::store::MessageState {
    store
        .message_state(&MessageKey::Ours(id.into()))
        .await
        .unwrap()
        .expect("a status")
}

/// A delivery report for our message, naming it as Sinch echoes our reference.
fn report(id: &str, status: &str, second: u32) -> String {
    json!({"app_id": "app-1", "correlation_id": format!("sinch-hooks:{id}"),
        "event_time": format!("2026-11-23T04:00:0{second}Z"),
        "message_delivery_report": {"message_id": format!("S-{id}"), "status": status,
            "channel_identity": {"channel": "WHATSAPP", "identity": "46701234567"}}})
    .to_string()
}

async fn a_job_is_sent_and_moves_to_sent<S: Store + Clone + 'static>(store: S) {
    let sinch = fake_sinch().await;
    let worker = worker(store.clone(), &sinch);
    accepted(&store, "msg_1", "+46701234567").await;
    let outcomes = run(
        &worker,
        vec![job_record("m1", &job("msg_1", "+46701234567"), 1)],
    )
    .await;
    assert!(
        matches!(
            &outcomes[0],
            RecordOutcome::Handled {
                handled: Handled::Outbound {
                    left_at_ms: Some(_),
                    ..
                },
                ..
            }
        ),
        "{outcomes:?}"
    );
    // SQS delivers it again (a duplicate): nothing sent twice.
    let outcomes = run(
        &worker,
        vec![job_record("m1", &job("msg_1", "+46701234567"), 2)],
    )
    .await;
    assert!(
        matches!(
            &outcomes[0],
            RecordOutcome::Handled {
                handled: Handled::Outbound {
                    left_at_ms: None,
                    ..
                },
                ..
            }
        ),
        "{outcomes:?}"
    );
    assert_eq!(sends(&sinch, "msg_1").await, 1);
    let state = state(&store, "msg_1").await;
    let history: Vec<&str> = state.history.iter().map(|h| h.status.as_str()).collect();
    assert_eq!(history, ["ACCEPTED", "SENT"]);
    assert_eq!(state.sinch_id, Some(SinchId::Message("01REPLY".into())));
    // The request Sinch got: to the identity without +, our reference on it.
    let request = sinch
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == SEND)
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body["recipient"]["identified_by"]["channel_identities"][0]["identity"],
        "46701234567"
    );
    assert_eq!(body["correlation_id"], "sinch-hooks:msg_1");
}

async fn sinch_answering_500_then_200_sends_one_message<S: Store + Clone + 'static>(store: S) {
    let sinch = testkit::fake_sinch().await;
    Mock::given(method("POST"))
        .and(path(SEND))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&sinch)
        .await;
    Mock::given(method("POST"))
        .and(path(SEND))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"message_id": "01OK"})))
        .mount(&sinch)
        .await;
    let worker = worker(store.clone(), &sinch);
    accepted(&store, "msg_2", "+46701234567").await;
    let outcomes = run(
        &worker,
        vec![job_record("m2", &job("msg_2", "+46701234567"), 1)],
    )
    .await;
    assert!(
        matches!(&outcomes[0], RecordOutcome::Handled { .. }),
        "{outcomes:?}"
    );
    // Two requests reached Sinch, one of them refused: one message there.
    assert_eq!(sends(&sinch, "msg_2").await, 2);
    let state = state(&store, "msg_2").await;
    assert_eq!(
        (state.status.as_str(), state.sinch_id),
        ("SENT", Some(SinchId::Message("01OK".into())))
    );
}

async fn an_answer_lost_is_settled_by_the_report_not_by_a_second_send<
    S: Store + Clone + 'static,
>(
    store: S,
) {
    let sinch = testkit::fake_sinch().await;
    // Sinch takes it and answers after the invocation gave up.
    Mock::given(method("POST"))
        .and(path(SEND))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"message_id": "S-msg_3"}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&sinch)
        .await;
    let worker = worker(store.clone(), &sinch);
    accepted(&store, "msg_3", "+46701234567").await;
    let short = tokio::time::Instant::now() + Duration::from_secs(1);
    let outcomes = process_batch(
        worker.clone(),
        event(vec![job_record("m3", &job("msg_3", "+46701234567"), 1)]),
        short,
    )
    .await;
    assert!(
        matches!(&outcomes[0].1, RecordOutcome::Retry { .. }),
        "{outcomes:?}"
    );
    // Retried at once: unsettled, not sent again.
    let outcomes = run(
        &worker,
        vec![job_record("m3", &job("msg_3", "+46701234567"), 2)],
    )
    .await;
    assert!(
        matches!(&outcomes[0], RecordOutcome::Retry { .. }),
        "{outcomes:?}"
    );
    assert_eq!(sends(&sinch, "msg_3").await, 1);
    // The report arrives: the send is settled; the next delivery of the job only records it.
    run(
        &worker,
        vec![record("r1", &report("msg_3", "DELIVERED", 1))],
    )
    .await;
    let outcomes = run(
        &worker,
        vec![job_record("m3", &job("msg_3", "+46701234567"), 3)],
    )
    .await;
    assert!(
        matches!(
            &outcomes[0],
            RecordOutcome::Handled {
                handled: Handled::Outbound {
                    left_at_ms: None,
                    ..
                },
                ..
            }
        ),
        "{outcomes:?}"
    );
    assert_eq!(sends(&sinch, "msg_3").await, 1, "one message at Sinch");
    let state = state(&store, "msg_3").await;
    assert_eq!(state.status, "DELIVERED");
    assert_eq!(state.send, Some(SendState::Sent));
}

async fn a_refusal_is_failed_with_sinchs_reason<S: Store + Clone + 'static>(store: S) {
    let sinch = fake_sinch().await;
    let worker = worker(store.clone(), &sinch);
    accepted(&store, "msg_4", "rejected").await;
    let outcomes = run(
        &worker,
        vec![job_record("m4", &job("msg_4", "rejected"), 1)],
    )
    .await;
    assert!(
        matches!(
            &outcomes[0],
            RecordOutcome::Handled {
                handled: Handled::OutboundRefused { .. },
                ..
            }
        ),
        "{outcomes:?}"
    );
    let state = state(&store, "msg_4").await;
    assert_eq!(state.status, "FAILED");
    let reason = state.reason().unwrap();
    assert_eq!(
        (reason.code.as_str(), reason.description.as_deref()),
        ("INVALID_ARGUMENT", Some("Recipient not allowed"))
    );
}

async fn retries_spent_make_it_failed<S: Store + Clone + 'static>(store: S) {
    let sinch = fake_sinch().await;
    let worker = worker(store.clone(), &sinch);
    accepted(&store, "msg_5", "transient").await;
    for receives in 1..=3 {
        let outcomes = run(
            &worker,
            vec![job_record("m5", &job("msg_5", "transient"), receives)],
        )
        .await;
        assert!(
            matches!(&outcomes[0], RecordOutcome::Retry { .. }),
            "{outcomes:?}"
        );
    }
    let state = state(&store, "msg_5").await;
    assert_eq!(state.status, "FAILED");
    assert_eq!(
        state.reason().map(|r| r.code.as_str()),
        Some("RETRIES_EXHAUSTED")
    );
}

/// Reports of a message may overtake its send's answer, and each other: in every order, the
/// status ends at the furthest, and the answer recorded late moves nothing back.
async fn reports_in_every_order_before_and_after_the_send_is_recorded<
    S: Store + Clone + 'static,
>(
    store: S,
) {
    let sinch = fake_sinch().await;
    let worker = worker(store.clone(), &sinch);
    let statuses = ["QUEUED_ON_CHANNEL", "DELIVERED", "READ"];
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for (n, order) in orders.iter().enumerate() {
        for send_after in 0..=3 {
            let id = format!("msg_o{n}_{send_after}");
            accepted(&store, &id, "+46701234567").await;
            for (i, &index) in order.iter().enumerate() {
                if i == send_after {
                    run(
                        &worker,
                        vec![job_record("job", &job(&id, "+46701234567"), 1)],
                    )
                    .await;
                }
                run(
                    &worker,
                    vec![record(
                        &format!("r{i}"),
                        &report(&id, statuses[index], i as u32),
                    )],
                )
                .await;
            }
            if send_after == 3 {
                run(
                    &worker,
                    vec![job_record("job", &job(&id, "+46701234567"), 1)],
                )
                .await;
            }
            let state = state(&store, &id).await;
            assert_eq!(state.status, "READ", "{order:?}, send after {send_after}");
            let mut seen: Vec<&str> = state.history.iter().map(|h| h.status.as_str()).collect();
            seen.sort();
            // ACCEPTED, three reports, and SENT only when the send came before any report (a
            // report first proves Sinch had it: the send is then recorded without a request).
            assert!(
                seen.contains(&"ACCEPTED") && seen.contains(&"READ"),
                "{seen:?}"
            );
            assert!(sends(&sinch, &id).await <= 1, "{id}");
        }
    }
}

fn template_job(id: &str, to: &str) -> OutboundJob {
    let mut job = job(id, to);
    if let Route::Conversation { message, .. } = &mut job.route {
        *message = AppMessage::from_json(
            json!({"template_message": {"channel_template": {"WHATSAPP": {
                "template_id": "order_shipped", "language_code": "en_US"}}}})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        );
    }
    job
}

pub(crate) fn reason_of(state: &pipeline::store::MessageState) -> Option<&str> {
    state.reason().map(|r| r.code.as_str())
}

/// Accepted while the recipient could still be written to; a STOP arrives while the job waits:
/// nothing reaches Sinch, the message ends FAILED `recipient_opted_out`. So does a redrive of
/// the same job later, and a job queued twice.
async fn a_stop_after_acceptance_withholds_the_send<S: Store + Clone + 'static>(store: S) {
    let sinch = fake_sinch().await;
    let worker = worker(store.clone(), &sinch);
    accepted(&store, "msg_s", "+46701234567").await;
    wrote(
        &store,
        "+46701234567",
        Some(OptChange::OptOut {
            contact: ContactKey::new("WHATSAPP", "46701234567"),
            by: "01STOP".into(),
        }),
    )
    .await;
    for receives in [1, 2] {
        let outcomes = run(
            &worker,
            vec![job_record("ms", &job("msg_s", "+46701234567"), receives)],
        )
        .await;
        assert!(
            matches!(
                &outcomes[0],
                RecordOutcome::Handled {
                    handled: Handled::OutboundRefused { .. },
                    ..
                }
            ),
            "{outcomes:?}"
        );
    }
    assert_eq!(sends(&sinch, "msg_s").await, 0, "nothing reached Sinch");
    let ended = state(&store, "msg_s").await;
    assert_eq!(
        (
            ended.status.as_str(),
            reason_of(&ended),
            ended.progress().terminal
        ),
        ("FAILED", Some("recipient_opted_out"), true)
    );
    // A template to someone opted out on the fallback channel only: withheld too.
    accepted(&store, "msg_f", "+46709999999").await;
    let sms = ContactKey::new("SMS", "46709999999");
    let stop = InboundRecord {
        text_digest: None,
        id: "01SMSSTOP".into(),
        from: sms.clone(),
        to: "+4670000000".into(),
        kind: "mo_text".into(),
        text: Some("STOP".into()),
        media: Vec::new(),
        contact_id: None,
        conversation_id: None,
        received_at_ms: pipeline::clock::unix_millis(std::time::SystemTime::now()),
    };
    store
        .record_inbound(
            &stop,
            Some(&OptChange::OptOut {
                contact: sms,
                by: "01SMSSTOP".into(),
            }),
        )
        .await
        .unwrap();
    let mut with_fallback = template_job("msg_f", "+46709999999");
    if let Route::Conversation { fallback, .. } = &mut with_fallback.route {
        fallback.push("SMS".into());
    }
    run(&worker, vec![job_record("mf", &with_fallback, 1)]).await;
    assert_eq!(sends(&sinch, "msg_f").await, 0);
    assert_eq!(
        reason_of(&state(&store, "msg_f").await),
        Some("recipient_opted_out")
    );
}

/// WhatsApp's window closed between acceptance and the send: a free-form message is withheld
/// (`whatsapp_window_closed`); a template still goes.
async fn a_window_closed_before_the_send_withholds_free_form<S: Store + Clone + 'static>(store: S) {
    let sinch = fake_sinch().await;
    let worker = worker(store.clone(), &sinch);
    for id in ["msg_w", "msg_t"] {
        store
            .accept_message(&AcceptedMessage {
                id: id.into(),
                channel: "WHATSAPP".into(),
                to: "+46702222222".into(),
                metadata: None,
                caller: "test".into(),
                at_ms: 1_763_870_400_000,
                status: pipeline::status::Status::Accepted,
                scheduled_at_ms: None,
                batch: None,
                fallback: Vec::new(),
            })
            .await
            .unwrap();
    }
    // Their last message: 25 hours ago.
    let day_ago = pipeline::clock::unix_millis(std::time::SystemTime::now()) - 25 * 3_600_000;
    let old = InboundRecord {
        text_digest: None,
        id: "01OLD".into(),
        from: ContactKey::new("WHATSAPP", "46702222222"),
        to: "app-1".into(),
        kind: "text_message".into(),
        text: Some("hi".into()),
        media: Vec::new(),
        contact_id: None,
        conversation_id: None,
        received_at_ms: day_ago,
    };
    store.record_inbound(&old, None).await.unwrap();
    run(
        &worker,
        vec![
            job_record("mw", &job("msg_w", "+46702222222"), 1),
            job_record("mt", &template_job("msg_t", "+46702222222"), 1),
        ],
    )
    .await;
    assert_eq!(sends(&sinch, "msg_w").await, 0);
    assert_eq!(
        reason_of(&state(&store, "msg_w").await),
        Some("whatsapp_window_closed")
    );
    assert_eq!(
        sends(&sinch, "msg_t").await,
        1,
        "a template is not bound by it"
    );
    assert_eq!(state(&store, "msg_t").await.status, "SENT");
}

/// The last receive of a job whose send may have reached Sinch: parked `UNKNOWN`
/// (`SEND_OUTCOME_UNKNOWN`), not final; a late report still moves it on.
async fn an_outcome_never_known_ends_unknown_until_a_report_says<S: Store + Clone + 'static>(
    store: S,
) {
    let sinch = testkit::fake_sinch().await;
    Mock::given(method("POST"))
        .and(path(SEND))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"message_id": "S-msg_u"}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&sinch)
        .await;
    let worker = worker(store.clone(), &sinch);
    accepted(&store, "msg_u", "+46701234567").await;
    for receives in 1..=3 {
        let short = tokio::time::Instant::now() + Duration::from_secs(1);
        process_batch(
            worker.clone(),
            event(vec![job_record(
                "mu",
                &job("msg_u", "+46701234567"),
                receives,
            )]),
            short,
        )
        .await;
    }
    assert_eq!(
        sends(&sinch, "msg_u").await,
        1,
        "sent once, its answer lost"
    );
    let parked = state(&store, "msg_u").await;
    assert_eq!(
        (
            parked.status.as_str(),
            reason_of(&parked),
            parked.progress().terminal
        ),
        ("UNKNOWN", Some("SEND_OUTCOME_UNKNOWN"), false)
    );
    run(&worker, vec![record("r", &report("msg_u", "DELIVERED", 4))]).await;
    assert_eq!(state(&store, "msg_u").await.status, "DELIVERED");
}

/// The last receive after the store failed before any attempt was on record: FAILED, and never
/// sent after (a redrive finds it ended).
async fn a_store_outage_on_the_last_receive_fails_a_message_never_sent<
    S: Store + Clone + 'static,
>(
    store: S,
) {
    let sinch = fake_sinch().await;
    let faulty = testkit::faulty::FaultyStore::new(store.clone());
    let worker = worker(faulty.clone(), &sinch);
    accepted(&store, "msg_o", "+46701234567").await;
    faulty.fail("begin_send", testkit::faulty::Fault::Before);
    for receives in 1..=3 {
        run(
            &worker,
            vec![job_record("mo", &job("msg_o", "+46701234567"), receives)],
        )
        .await;
    }
    faulty.heal();
    let ended = state(&store, "msg_o").await;
    assert_eq!(
        (ended.status.as_str(), reason_of(&ended)),
        ("FAILED", Some("RETRIES_EXHAUSTED"))
    );
    run(
        &worker,
        vec![job_record("mo", &job("msg_o", "+46701234567"), 1)],
    )
    .await;
    assert_eq!(sends(&sinch, "msg_o").await, 0);
}

/// The messages API may queue one message twice (a retry that cannot tell whether its first
/// enqueue landed): two jobs, delivered at once and again later, make one send.
async fn two_jobs_of_one_message_send_it_once<S: Store + Clone + 'static>(store: S) {
    let sinch = fake_sinch_with_delay(Duration::from_millis(200)).await;
    let worker = worker(store.clone(), &sinch);
    accepted(&store, "msg_2j", "+46701234567").await;
    let job = job("msg_2j", "+46701234567");
    run(
        &worker,
        vec![job_record("j1", &job, 1), job_record("j2", &job, 1)],
    )
    .await;
    run(&worker, vec![job_record("j2", &job, 2)]).await;
    assert_eq!(sends(&sinch, "msg_2j").await, 1);
    assert_eq!(state(&store, "msg_2j").await.status, "SENT");
}

/// The allow-list narrowed after acceptance (a schedule, a batch, a retry waiting): the worker
/// withholds what is now outside it, FAILED `country_not_allowed`, and sends the rest.
async fn a_country_taken_off_the_list_after_acceptance_withholds_the_send<
    S: Store + Clone + 'static,
>(
    store: S,
) {
    let sinch = fake_sinch().await;
    let Some(mut narrowed) = Arc::into_inner(worker(store.clone(), &sinch)) else {
        panic!("the worker is not shared yet");
    };
    narrowed.services.send_rules.countries = pipeline::send_rules::Countries::of(["47"]);
    let worker = Arc::new(narrowed);
    accepted(&store, "msg_se", "+46701234567").await;
    accepted(&store, "msg_no", "+4791234567").await;
    let outcomes = run(
        &worker,
        vec![
            job_record("se", &job("msg_se", "+46701234567"), 1),
            job_record("no", &job("msg_no", "+4791234567"), 1),
        ],
    )
    .await;
    // The records run at once: their outcomes come in the order they finish.
    assert!(
        outcomes.iter().any(|outcome| matches!(
            outcome,
            RecordOutcome::Handled {
                handled: Handled::OutboundRefused { id, .. },
                ..
            } if id == "msg_se"
        )),
        "{outcomes:?}"
    );
    assert_eq!(sends(&sinch, "msg_se").await, 0, "nothing reached Sinch");
    let ended = state(&store, "msg_se").await;
    assert_eq!(
        (
            ended.status.as_str(),
            reason_of(&ended),
            ended.progress().terminal
        ),
        ("FAILED", Some("country_not_allowed"), true)
    );
    assert_eq!(
        sends(&sinch, "msg_no").await,
        1,
        "an allowed country is sent"
    );
}

testkit::for_both_stores!(
    a_country_taken_off_the_list_after_acceptance_withholds_the_send,
    a_job_is_sent_and_moves_to_sent,
    sinch_answering_500_then_200_sends_one_message,
    an_answer_lost_is_settled_by_the_report_not_by_a_second_send,
    a_refusal_is_failed_with_sinchs_reason,
    retries_spent_make_it_failed,
    reports_in_every_order_before_and_after_the_send_is_recorded,
    a_stop_after_acceptance_withholds_the_send,
    a_window_closed_before_the_send_withholds_free_form,
    an_outcome_never_known_ends_unknown_until_a_report_says,
    a_store_outage_on_the_last_receive_fails_a_message_never_sent,
    two_jobs_of_one_message_send_it_once,
);

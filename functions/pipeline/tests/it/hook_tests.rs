//! The hook inside the worker: called where the module says, its failures classified, the
//! callbacks it wants claimed once.

use std::sync::Mutex;
use std::time::Duration;

use pipeline::clock::Clock;
use pipeline::envelope::Envelope;
use pipeline::handlers::{Handled, Services};
use pipeline::hook::{Decision, Hook, HookError, Inbound, Report};
use pipeline::process::{Failure, HOOK_FAILED, process};
use pipeline::store::prelude::*;
use pipeline::store::{ContactKey, MemoryStore};
use serde_json::json;
use sinch::callback::Callback;
use sinch::client::{ClientConfig, SinchClient, Urls};
use tokio::time::Instant;

/// Remembers what it was called with; fails as told.
#[derive(Default)]
struct Recording {
    calls: Mutex<Vec<String>>,
    fail: Option<HookError>,
    wants_other: bool,
    /// Says it leaves `on_status` alone (while it records all the same).
    leaves_statuses: bool,
}

impl Hook for Recording {
    async fn on_inbound(&self, message: Inbound<'_>) -> Result<Decision, HookError> {
        self.calls.lock().unwrap().push(format!(
            "inbound {} opted_out_before={}",
            message.message.id, message.opted_out_before
        ));
        match &self.fail {
            Some(error) => Err(error.clone()),
            None => Ok(Decision {
                action: pipeline::hook::Action::OptOut,
                reply: None,
            }),
        }
    }

    async fn on_status(&self, status: Report<'_>) -> Result<(), HookError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("status {} {}", status.key, status.update.status));
        Ok(())
    }

    async fn on_other(&self, callback: &Callback) -> Result<(), HookError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("other {}", callback.kind()));
        Ok(())
    }

    fn wants_other(&self) -> bool {
        self.wants_other
    }

    fn wants_status(&self) -> bool {
        !self.leaves_statuses
    }
}

fn services(hook: Recording) -> Services<MemoryStore, Recording> {
    services_on(MemoryStore::new(), hook)
}

fn services_on<S: Store>(store: S, hook: Recording) -> Services<S, Recording> {
    Services {
        privacy: Default::default(),
        store,
        // Never called: the hook decides no reply.
        sinch: SinchClient::new(ClientConfig::new(Urls::all_at("http://127.0.0.1:9"))).unwrap(),
        hook,
        app_id: None,
        idempotency_ttl: pipeline::handlers::DEFAULT_IDEMPOTENCY_TTL,
        send_rules: pipeline::send_rules::SendRules::default(),
        ledger: pipeline::ledger::Ledger::default(),
        pacing: Default::default(),
        clock: Clock::System,
    }
}

fn envelope(body: serde_json::Value) -> Envelope {
    testkit::envelope(body.to_string().into_bytes())
}

fn inbound(id: &str) -> Envelope {
    envelope(json!({
        "app_id": "app-1", "accepted_time": testkit::now_rfc3339(),
        "message": {"id": id, "direction": "TO_APP", "contact_message": {"text_message": {"text": "hi"}},
            "channel_identity": {"channel": "WHATSAPP", "identity": "46701234567", "app_id": "app-1"}}
    }))
}

fn report() -> Envelope {
    envelope(json!({
        "app_id": "app-1", "accepted_time": testkit::now_rfc3339(),
        "message_delivery_report": {"message_id": "01M", "status": "DELIVERED",
            "channel_identity": {"channel": "WHATSAPP", "identity": "46701234567", "app_id": "app-1"}}
    }))
}

fn contact_event() -> Envelope {
    envelope(json!({"app_id": "app-1", "contact_create_notification": {"contact": {"id": "c1"}}}))
}

/// An invocation's deadline, wide enough for a loaded two-core machine talking to moto
/// (tests of running out of time set their own).
fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

#[tokio::test]
async fn the_hook_decides_for_inbound_messages_and_hears_every_status_once() {
    let services = services(Recording::default());
    process(&services, &inbound("01A"), deadline())
        .await
        .unwrap();
    // Its decision is stored with the message: the sender is opted out.
    let contact = services
        .store
        .contact(&ContactKey::new("WHATSAPP", "46701234567"))
        .await
        .unwrap();
    assert_eq!(contact.opted_out_by.as_deref(), Some("01A"));
    process(&services, &report(), deadline()).await.unwrap();
    // Duplicates do not reach it again.
    let (_, handled) = process(&services, &inbound("01A"), deadline())
        .await
        .unwrap();
    assert!(matches!(handled, Handled::Duplicate { .. }));
    process(&services, &report(), deadline()).await.unwrap();
    // Callbacks it did not ask for are not passed on.
    process(&services, &contact_event(), deadline())
        .await
        .unwrap();
    assert_eq!(
        *services.hook.calls.lock().unwrap(),
        [
            "inbound 01A opted_out_before=false",
            "status conversation/01M DELIVERED"
        ]
    );
}

#[tokio::test]
async fn a_hook_that_wants_other_callbacks_gets_each_once() {
    let services = services(Recording {
        wants_other: true,
        ..Recording::default()
    });
    process(&services, &contact_event(), deadline())
        .await
        .unwrap();
    let (_, again) = process(&services, &contact_event(), deadline())
        .await
        .unwrap();
    assert!(
        matches!(again, Handled::Duplicate { .. }),
        "claimed: {again:?}"
    );
    assert_eq!(
        *services.hook.calls.lock().unwrap(),
        ["other conversation.contact_create_notification"]
    );
}

#[tokio::test]
async fn hook_failures_retry_or_dead_letter_and_release_the_claim() {
    let transient = services(Recording {
        fail: Some(HookError::Transient("the CRM is down".into())),
        ..Recording::default()
    });
    let failure = process(&transient, &inbound("01B"), deadline())
        .await
        .unwrap_err();
    assert!(matches!(failure, Failure::Transient { .. }), "{failure:?}");
    // The claim was released: the retry runs the hook again.
    let failure = process(&transient, &inbound("01B"), deadline())
        .await
        .unwrap_err();
    assert!(matches!(failure, Failure::Transient { .. }));
    assert_eq!(transient.hook.calls.lock().unwrap().len(), 2);
    // Nothing was stored for the failed attempts.
    assert!(transient.store.inbound().is_empty());

    let permanent = services(Recording {
        fail: Some(HookError::Permanent("cannot be handled".into())),
        ..Recording::default()
    });
    match process(&permanent, &inbound("01C"), deadline())
        .await
        .unwrap_err()
    {
        Failure::Poison { reason, detail } => {
            assert_eq!(reason, HOOK_FAILED);
            assert!(detail.contains("cannot be handled"), "{detail}");
        }
        other => panic!("dead-lettered expected, got {other:?}"),
    }
}

/// A report on our message, with its event's time: the kind a hook that leaves statuses alone
/// lets go unclaimed.
fn our_report(event_time: Option<&str>) -> Envelope {
    let mut body = json!({
        "app_id": "app-1", "accepted_time": testkit::now_rfc3339(),
        "correlation_id": pipeline::ledger::reference::to_sinch("msg_01OURS"),
        "message_delivery_report": {"message_id": "01M", "status": "DELIVERED",
            "channel_identity": {"channel": "WHATSAPP", "identity": "46701234567", "app_id": "app-1"}}
    });
    if let Some(at) = event_time {
        body["event_time"] = json!(at);
    }
    envelope(body)
}

async fn claimed(services: &Services<MemoryStore, Recording>, envelope: &Envelope) -> bool {
    let body = envelope.raw_body().unwrap();
    let key = pipeline::idempotency::key(&sinch::callback::parse(&body).unwrap(), &body);
    let claim = services
        .store
        .claim(&pipeline::store::ClaimRequest {
            key: &key,
            payload_hash: "h",
            lease_until_ms: u64::MAX,
            now_ms: 0,
            value: None,
        })
        .await
        .unwrap();
    claim != pipeline::store::Claim::Claimed { value: None }
}

#[tokio::test]
async fn reports_go_unclaimed_only_when_the_hook_leaves_statuses_alone_and_they_are_idempotent_alone()
 {
    let leaves = || Recording {
        leaves_statuses: true,
        ..Recording::default()
    };
    // Our message's report with its event's time, twice: written once, never claimed.
    let services = services(leaves());
    let ours = our_report(Some("2026-11-23T04:00:01Z"));
    for _ in 0..2 {
        let (_, handled) = process(&services, &ours, deadline()).await.unwrap();
        assert!(matches!(handled, Handled::Status(_)), "{handled:?}");
    }
    assert!(!claimed(&services, &ours).await);
    let state = services
        .store
        .message_state(&pipeline::store::MessageKey::Ours("msg_01OURS".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.history.len(), 1);
    // The hook, which said it does nothing with statuses, heard both.
    assert_eq!(services.hook.calls.lock().unwrap().len(), 2);

    // Without its event's time (a repeat would be stamped anew), or on a message not ours, or
    // for a hook that acts on statuses: claimed, and a repeat is a duplicate.
    for (services, report) in [
        (self::services(leaves()), our_report(None)),
        (self::services(leaves()), report()),
        (
            self::services(Recording::default()),
            our_report(Some("2026-11-23T04:00:01Z")),
        ),
    ] {
        process(&services, &report, deadline()).await.unwrap();
        let (_, again) = process(&services, &report, deadline()).await.unwrap();
        assert!(matches!(again, Handled::Duplicate { .. }), "{again:?}");
        assert!(claimed(&services, &report).await);
    }
}

/// The logs hold ids, codes and counts, never a number (docs/consent.md): an SMS STOP, an SMS
/// recipient's report and Sinch's opt-out notification, handled at INFO, name no one.
#[tokio::test]
async fn the_lines_at_info_name_no_number() {
    let lines = testkit::Captured::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let services = services(Recording::default());
    let number = "46709876543";
    for body in [
        json!({"type": "mo_text", "id": "01SMSSTOP", "from": number, "to": "12345", "body": "STOP",
            "received_at": testkit::now_rfc3339()}),
        json!({"type": "recipient_delivery_report_sms", "batch_id": "01BATCH", "recipient": format!("+{number}"),
            "code": 0, "status": "Delivered", "at": testkit::now_rfc3339()}),
        json!({"app_id": "app-1", "accepted_time": testkit::now_rfc3339(),
            "opt_out_notification": {"contact_id": "c1", "channel": "SMS", "identity": number,
                "status": "OPT_OUT_SUCCEEDED", "request_id": "r1"}}),
    ] {
        process(&services, &envelope(body), deadline())
            .await
            .unwrap();
    }
    let written = lines.text();
    assert!(written.contains("delivery status recorded"), "{written}");
    assert!(written.contains("inbound message stored"), "{written}");
    assert!(written.contains("opt-out from Sinch"), "{written}");
    assert!(!written.contains(number), "{written}");
}

/// An unclaimed report whose status write landed but whose answer was lost (the Lambda died,
/// the store timed out) fails the record; SQS delivers it again, with no claim to wait for, and
/// the second run leaves the message as one run would have.
async fn an_unclaimed_report_redelivered_after_a_lost_answer_is_written_once(
    store: impl Store + Clone,
) {
    use testkit::faulty::{Fault, FaultyStore};
    let faulty = FaultyStore::new(store);
    let services = services_on(
        faulty.clone(),
        Recording {
            leaves_statuses: true,
            ..Recording::default()
        },
    );
    let report = our_report(Some("2026-11-23T04:00:01Z"));
    faulty.fail_times("record_status", Fault::After, 1);
    let first = process(&services, &report, deadline()).await;
    assert!(
        matches!(first, Err(Failure::Transient { store: true, .. })),
        "{first:?}"
    );
    let (_, again) = process(&services, &report, deadline()).await.unwrap();
    assert!(matches!(again, Handled::Status(_)), "{again:?}");
    let state = faulty
        .inner()
        .message_state(&pipeline::store::MessageKey::Ours("msg_01OURS".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.status, "DELIVERED");
    assert_eq!(state.history.len(), 1);
}

testkit::for_both_stores!(an_unclaimed_report_redelivered_after_a_lost_answer_is_written_once);

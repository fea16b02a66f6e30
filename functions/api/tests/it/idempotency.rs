//! The Idempotency-Key semantics of the IETF draft, against the in-memory store and against
//! DynamoDB on moto_server: replay, reuse with another body, in flight, expiry, per caller.

use super::common;

use std::time::Duration;

use api::Api;
use common::*;
use lambda_http::Request;
use pipeline::clock::Clock;
use pipeline::queue::MemoryQueue;
use pipeline::store::{ClaimRequest, DynamoStore, MemoryStore, MessageKey, Store};
use testkit::Moto;
use testkit::faulty::{Fault, FaultyStore};

const BODY: &str = r#"{"to":"+46701234567","channel":"SMS_API","text":"Your code is 1234"}"#;

/// The request as API Gateway gives it after IAM authorization.
fn as_caller(request: Request, arn: &str) -> Request {
    crate::common::signed_by(request, arn, "$default")
}

async fn replays_the_first_answer<S: Store>(api: Api<S, MemoryQueue>) {
    let (status, first, replayed) = call(&api, post(Some("key-1"), BODY)).await;
    assert_eq!((status, replayed), (202, false));
    let (status, again, replayed) = call(&api, post(Some("key-1"), BODY)).await;
    assert_eq!(
        (status, replayed),
        (202, true),
        "the same key and body replay"
    );
    assert_eq!(again, first, "the same answer");
    assert_eq!(api.lanes.transactional.len(), 1, "queued once");
}

async fn another_body_under_the_same_key_is_422<S: Store>(api: Api<S, MemoryQueue>) {
    assert_eq!(call(&api, post(Some("key-2"), BODY)).await.0, 202);
    let other = BODY.replace("1234", "9999");
    let (status, answer, _) = call(&api, post(Some("key-2"), &other)).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    assert_eq!(api.lanes.transactional.len(), 1);
}

async fn a_key_in_flight_is_409<S: Store>(api: Api<S, MemoryQueue>) {
    // Another request holds the key (its lease runs), as if it were still being handled.
    let scoped = format!("api/{}/key-3", digest("local"));
    api.store
        .claim(&ClaimRequest {
            key: &scoped,
            payload_hash: "h",
            lease_until_ms: NOW_MS + 30_000,
            now_ms: NOW_MS,
            value: None,
        })
        .await
        .unwrap();
    let response = api::handle(&api, post(Some("key-3"), BODY)).await;
    assert_eq!(response.status().as_u16(), 409);
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(api.lanes.transactional.is_empty());
}

async fn a_key_expires_after_24_hours<S: Store + Clone>(api: Api<S, MemoryQueue>) {
    assert_eq!(call(&api, post(Some("key-4"), BODY)).await.0, 202);
    let later = Api {
        store: api.store.clone(),
        lanes: pipeline::schedule::Lanes {
            transactional: MemoryQueue::new("outbound"),
            bulk: pipeline::queue::MemoryQueue::new("bulk"),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        config: config(),
        clock: Clock::Fixed(now() + Duration::from_secs(24 * 3600 + 1)),
    };
    let (status, _, replayed) = call(&later, post(Some("key-4"), BODY)).await;
    assert_eq!((status, replayed), (202, false), "a new send");
    assert_eq!(later.lanes.transactional.len(), 1);
}

async fn keys_are_scoped_to_the_caller<S: Store>(api: Api<S, MemoryQueue>) {
    let alice = "arn:aws:iam::123456789012:user/alice";
    let orders = "arn:aws:sts::123456789012:assumed-role/orders/i-0abc";
    let (status, _, replayed) = call(&api, as_caller(post(Some("shared"), BODY), alice)).await;
    assert_eq!((status, replayed), (202, false));
    let (status, _, replayed) = call(&api, as_caller(post(Some("shared"), BODY), orders)).await;
    assert_eq!(
        (status, replayed),
        (202, false),
        "another caller, its own key"
    );
    // Another session of the same role is the same caller.
    let other_session = "arn:aws:sts::123456789012:assumed-role/orders/i-0def";
    let (status, _, replayed) =
        call(&api, as_caller(post(Some("shared"), BODY), other_session)).await;
    assert_eq!((status, replayed), (202, true));
    assert_eq!(api.lanes.transactional.len(), 2);
}

async fn a_rule_refusal_is_remembered<S: Store>(api: Api<S, MemoryQueue>) {
    let closed = r#"{"to":"+46701234567","channel":"WHATSAPP","text":"hi"}"#;
    assert_eq!(call(&api, post(Some("key-5"), closed)).await.0, 422);
    // The contact writes: the same key still answers what it answered.
    wrote(&api.store, "WHATSAPP", "46701234567", NOW_MS).await;
    let (status, _, replayed) = call(&api, post(Some("key-5"), closed)).await;
    assert_eq!((status, replayed), (422, true));
    assert_eq!(
        call(&api, post(Some("key-6"), closed)).await.0,
        202,
        "a new key"
    );
}

fn digest(text: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(text.as_bytes()))
}

fn memory() -> Api<MemoryStore, MemoryQueue> {
    api(MemoryStore::new())
}

async fn dynamo(moto: &Moto) -> Api<DynamoStore, MemoryQueue> {
    api(
        DynamoStore::with_new_table(&moto.sdk_config().await, "sinch-hooks")
            .await
            .expect("moto creates the table"),
    )
}

/// The Lambda died after the enqueue, before the key was completed (or completing it failed):
/// the client's retry, once the lease ran out, finds the same message and queues nothing new.
async fn a_retry_after_a_crash_past_the_enqueue_is_the_same_message<S: Store + Clone>(
    api: Api<S, MemoryQueue>,
) {
    let faulty = FaultyStore::new(api.store.clone());
    let crashing = Api {
        store: faulty.clone(),
        lanes: pipeline::schedule::Lanes {
            transactional: api.lanes.transactional.clone(),
            bulk: api.lanes.transactional.clone(),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        config: config(),
        clock: api.clock,
    };
    faulty.fail("complete", Fault::Before);
    let (status, first, _) = call(&crashing, post(Some("crash-1"), BODY)).await;
    assert_eq!(status, 202);
    assert_eq!(api.lanes.transactional.len(), 1);
    // While the first request's lease runs: in flight.
    assert_eq!(call(&api, post(Some("crash-1"), BODY)).await.0, 409);
    let later = Api {
        store: api.store.clone(),
        lanes: pipeline::schedule::Lanes {
            transactional: api.lanes.transactional.clone(),
            bulk: api.lanes.transactional.clone(),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        config: config(),
        clock: Clock::Fixed(now() + Duration::from_secs(31)),
    };
    let (status, again, _) = call(&later, post(Some("crash-1"), BODY)).await;
    assert_eq!(
        (status, &again["id"]),
        (202, &first["id"]),
        "the same message"
    );
    // Whether the first enqueue landed cannot be told from here, so the same message may be
    // queued again; never another one (the worker's ledger sends one message per id, however
    // many jobs name it: worker tests `two_jobs_of_one_message_send_it_once`).
    let ids = queued_ids(&api.lanes.transactional);
    assert!(
        !ids.is_empty()
            && ids
                .iter()
                .all(|id| Some(id.as_str()) == first["id"].as_str()),
        "{ids:?}"
    );
    // Once its send has begun, a retry queues nothing at all.
    let job_id = ids[0].clone();
    begin(&api.store, &job_id).await;
    let before = api.lanes.transactional.len();
    faulty.fail("complete", Fault::Before);
    let stuck = Api {
        store: faulty.clone(),
        lanes: pipeline::schedule::Lanes {
            transactional: api.lanes.transactional.clone(),
            bulk: api.lanes.transactional.clone(),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        config: config(),
        clock: Clock::Fixed(now() + Duration::from_secs(62)),
    };
    assert_eq!(call(&stuck, post(Some("crash-1"), BODY)).await.0, 202);
    faulty.heal();
    let much_later = Api {
        store: api.store.clone(),
        lanes: pipeline::schedule::Lanes {
            transactional: api.lanes.transactional.clone(),
            bulk: api.lanes.transactional.clone(),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        config: config(),
        clock: Clock::Fixed(now() + Duration::from_secs(93)),
    };
    let (status, again, _) = call(&much_later, post(Some("crash-1"), BODY)).await;
    assert_eq!((status, &again["id"]), (202, &first["id"]));
    assert_eq!(
        api.lanes.transactional.len(),
        before,
        "its send began: nothing queued"
    );
    // Now completed: replayed.
    let (status, _, replayed) = call(&much_later, post(Some("crash-1"), BODY)).await;
    assert_eq!((status, replayed), (202, true));
    // Another body under the key of a request that died: the key is reused, not retaken.
    faulty.fail("complete", Fault::Before);
    call(&crashing, post(Some("crash-2"), BODY)).await;
    let other = BODY.replace("1234", "9999");
    let (status, answer, _) = call(&later, post(Some("crash-2"), &other)).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
}

/// It died after storing the message, before the enqueue: the retry queues it, under the same id.
async fn a_retry_after_a_crash_before_the_enqueue_queues_the_same_message<S: Store + Clone>(
    api: Api<S, MemoryQueue>,
) {
    // Both the queue and the write that would fail the message are down: 503, the key kept.
    let faulty = FaultyStore::new(api.store.clone());
    faulty.fail("finish_send", Fault::Before);
    let broken = Api {
        store: faulty,
        lanes: pipeline::schedule::Lanes {
            transactional: pipeline::queue::SqsQueue::new(
                pipeline::queue::enqueue_client(
                    &testkit::sdk_config_for(&testkit::refused_endpoint()).await,
                    Duration::from_millis(300),
                ),
                "http://127.0.0.1:1/queue/outbound",
            ),
            bulk: pipeline::queue::SqsQueue::new(
                pipeline::queue::enqueue_client(
                    &testkit::sdk_config_for(&testkit::refused_endpoint()).await,
                    Duration::from_millis(300),
                ),
                "http://127.0.0.1:1/queue/bulk",
            ),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        config: config(),
        clock: api.clock,
    };
    let (status, answer, _) = call(&broken, post(Some("crash-3"), BODY)).await;
    assert_eq!(status, 503, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    for leak in ["127.0.0.1", "dispatch", "injected", "arn:", "sinch-hooks"] {
        assert!(!message.contains(leak), "{leak} in {message}");
    }
    assert!(api.lanes.transactional.is_empty());
    let later = Api {
        store: api.store.clone(),
        lanes: pipeline::schedule::Lanes {
            transactional: api.lanes.transactional.clone(),
            bulk: api.lanes.transactional.clone(),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        config: config(),
        clock: Clock::Fixed(now() + Duration::from_secs(31)),
    };
    let (status, answer, _) = call(&later, post(Some("crash-3"), BODY)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(api.lanes.transactional.len(), 1);
    assert_eq!(
        queued_ids(&api.lanes.transactional),
        [answer["id"].as_str().unwrap_or_default()],
        "one message, under the id the key reserved"
    );
    // The id is the one the dead request had stored: its message is the one queued.
    assert!(
        api.store
            .message_state(&MessageKey::Ours(
                queued_ids(&api.lanes.transactional)[0].clone()
            ))
            .await
            .unwrap()
            .is_some()
    );
}

/// The queue said no, but the job had landed and the worker began sending it: the fenced
/// `ENQUEUE_FAILED` write finds the attempt and the answer is 202, not a failed message that
/// was in fact sent.
async fn an_enqueue_that_landed_after_all_is_accepted<S: Store + Clone + 'static>(
    api: Api<S, MemoryQueue>,
) {
    let queue = LandsThenFails {
        inner: api.lanes.transactional.clone(),
        store: api.store.clone(),
    };
    let racing = Api {
        store: api.store.clone(),
        lanes: pipeline::schedule::Lanes {
            transactional: queue.clone(),
            bulk: queue,
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        config: config(),
        clock: api.clock,
    };
    let (status, answer, _) = call(&racing, post(Some("race-1"), BODY)).await;
    assert_eq!(status, 202, "{answer}");
    let state = api
        .store
        .message_state(&MessageKey::Ours(
            answer["id"].as_str().unwrap_or_default().into(),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(state.status, "FAILED");
    let (_, _, replayed) = call(&api, post(Some("race-1"), BODY)).await;
    assert!(replayed);
}

/// The worker began sending message `id`.
async fn begin<S: Store>(store: &S, id: &str) {
    let intent = pipeline::store::SendIntent {
        to: pipeline::store::ContactKey::new("SMS", "46701234567"),
        in_reply_to: None,
        text: None,
    };
    store
        .begin_send(&pipeline::store::SendAttempt {
            id,
            attempt: "worker-1",
            now_ms: NOW_MS,
            settle_before_ms: NOW_MS - 60_000,
            takeover: None,
            intent: &intent,
        })
        .await
        .expect("the worker began");
}

/// A queue that stores the job, sees the worker begin its send, and then reports a failure (a
/// timeout whose request had landed).
#[derive(Clone)]
struct LandsThenFails<S> {
    inner: MemoryQueue,
    store: S,
}

impl<S: Store> pipeline::queue::Queue for LandsThenFails<S> {
    async fn send(
        &self,
        envelope: &pipeline::envelope::Envelope,
    ) -> Result<pipeline::queue::MessageId, pipeline::queue::QueueError> {
        self.inner.send(envelope).await?;
        let body = envelope.raw_body().unwrap_or_default();
        let job = pipeline::jobs::parse(&body).expect("a job");
        begin(&self.store, &job.id).await;
        Err(pipeline::queue::QueueError::Unavailable {
            queue: "outbound".into(),
            detail: "timed out".into(),
        })
    }

    fn name(&self) -> &str {
        "lands-then-fails"
    }
}

/// The message ids of the jobs in the queue.
fn queued_ids(queue: &MemoryQueue) -> Vec<String> {
    queue
        .snapshot()
        .iter()
        .map(|queued| {
            let body = queued.envelope.raw_body().unwrap_or_default();
            pipeline::jobs::parse(&body).expect("a job").id
        })
        .collect()
}

testkit::for_both_stores_built!(
    a_retry_after_a_crash_past_the_enqueue_is_the_same_message,
    a_retry_after_a_crash_before_the_enqueue_queues_the_same_message,
    an_enqueue_that_landed_after_all_is_accepted,
    replays_the_first_answer,
    another_body_under_the_same_key_is_422,
    a_key_in_flight_is_409,
    a_key_expires_after_24_hours,
    keys_are_scoped_to_the_caller,
    a_rule_refusal_is_remembered,
);

/// The queue unreachable: 503, the key given back, and the message FAILED so that the worker
/// would never send it even if the queue had taken it; the retry is a new, single send.
#[tokio::test]
async fn a_queue_outage_is_503_and_the_retry_sends_once() {
    let store = MemoryStore::new();
    let sdk = testkit::sdk_config_for(&testkit::refused_endpoint()).await;
    let broken = Api {
        store: store.clone(),
        lanes: pipeline::schedule::Lanes {
            transactional: pipeline::queue::SqsQueue::new(
                pipeline::queue::enqueue_client(&sdk, Duration::from_millis(500)),
                "http://127.0.0.1:1/queue/outbound",
            ),
            bulk: pipeline::queue::SqsQueue::new(
                pipeline::queue::enqueue_client(&sdk, Duration::from_millis(500)),
                "http://127.0.0.1:1/queue/bulk",
            ),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        config: config(),
        clock: Clock::Fixed(now()),
    };
    let response = api::handle(&broken, post(Some("key-7"), BODY)).await;
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let messages = store.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].status, "FAILED");
    assert_eq!(
        messages[0].reason().map(|r| r.code.as_str()),
        Some("ENQUEUE_FAILED")
    );

    let working = api(store.clone());
    let (status, answer, replayed) = call(&working, post(Some("key-7"), BODY)).await;
    assert_eq!(
        (status, replayed),
        (202, false),
        "the key was given back: {answer}"
    );
    assert_eq!(working.lanes.transactional.len(), 1);
}

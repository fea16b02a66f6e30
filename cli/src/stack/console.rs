//! The console: what `GET /` of the local stack shows, live.
//!
//! | part of the page | fed by |
//! |---|---|
//! | counters | the stack's [`Stats`](super::stats::Stats) and queue depths |
//! | messages, each with its status timeline | the events the committed changes make (`Message Status Changed`), so it is the same in memory and against moto |
//! | inbound messages and the replies they got | `Message Received`, `Reply Sent`, and the replies' statuses |
//! | callbacks at the door, newest first, each with its body | the webhook route, as it answers |
//! | the dead-letter queue, with redrive | the event source's dead-letter queue |
//! | the send form | the local messages API (`POST /messages`) |
//! | sending: the lanes' depths, sends a second over the last minute, batches with their progress, what is scheduled (with cancel) | `GET /console/sending`, polled each second: the queues, the stack's count of sends, the batches posted here read through the API, the scheduler's pending jobs |
//!
//! The page loads `GET /console/state` (a page of messages, the rest in full), then follows
//! `GET /console/stream` (Server-Sent Events): at most four updates a second, each with only
//! what changed since the last, so a thousand callbacks a second cost the browser four small
//! messages. Everything here is bounded: the last [`DOOR_KEEP`] callbacks (bodies cut at
//! [`BODY_KEEP`] bytes), the last [`MESSAGES_KEEP`] messages, the last [`INBOUND_KEEP`] inbound
//! messages. No secret is ever in it: the signature headers are shown by name, never by value.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use publisher::{Entry, MemorySink};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// Callbacks kept for the door's feed.
pub const DOOR_KEEP: usize = 500;
/// Bytes of a callback's body kept for the page.
pub const BODY_KEEP: usize = 16 * 1024;
/// Messages kept (the oldest updated go first).
pub const MESSAGES_KEEP: usize = 100_000;
/// Inbound messages kept.
pub const INBOUND_KEEP: usize = 1_000;
/// Messages per page.
pub const PAGE: usize = 25;

/// One request at the door, as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DoorEntry {
    /// Its place in the door's log, from 1.
    pub seq: u64,
    /// When it arrived (RFC 3339).
    pub at: String,
    /// Whether it was answered 200.
    pub accepted: bool,
    /// `accepted`, or why it was refused (`signature_mismatch`, `stale_signature`, ...).
    pub reason: String,
    /// The HTTP status it was answered.
    pub status: u16,
    /// The callback's kind, when its body reads as one.
    pub kind: Option<String>,
    /// The body's size in bytes.
    pub size: usize,
    /// The body (cut at [`BODY_KEEP`]; invalid UTF-8 replaced).
    pub body: String,
    /// Whether the body shown was cut.
    pub truncated: bool,
    /// The signature headers it came with, by name only.
    pub signature_headers: Vec<String>,
}

/// A step of a message's timeline.
#[derive(Debug, Clone, Serialize)]
struct Step {
    status: String,
    at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<Value>,
}

/// A message, as the page shows it.
#[derive(Debug, Clone, Serialize)]
struct MessageView {
    id: String,
    ours: bool,
    channel: Option<String>,
    status: String,
    rank: u64,
    #[serde(rename = "final")]
    terminal: bool,
    reason: Option<Value>,
    steps: Vec<Step>,
    #[serde(skip)]
    version: u64,
}

/// An inbound message and what it got back.
#[derive(Debug, Clone, Serialize)]
struct InboundView {
    id: String,
    channel: String,
    from: String,
    text: Option<String>,
    media: Vec<String>,
    received_at: String,
    reply_id: Option<String>,
    reply_text: Option<String>,
    #[serde(skip)]
    version: u64,
}

#[derive(Debug, Default)]
struct Model {
    /// Bumped on every change; what the stream compares against.
    version: u64,
    door: VecDeque<DoorEntry>,
    door_seq: u64,
    messages: HashMap<String, MessageView>,
    /// Messages by their last change, oldest first: (version, id).
    recency: BTreeMap<u64, String>,
    inbound: VecDeque<InboundView>,
    /// Bumped whenever the dead-letter queue may have changed.
    dead_letters_version: u64,
    /// The batches posted through this stack, newest first.
    batches: VecDeque<String>,
}

/// Batches the sending panel follows.
pub const BATCHES_KEEP: usize = 20;

/// The console's state. Cheap to share.
#[derive(Debug, Default)]
pub struct Console(Mutex<Model>);

impl Console {
    /// An empty console.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Model) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A batch was posted (the panel follows the last [`BATCHES_KEEP`]).
    pub fn batch_posted(&self, id: &str) {
        self.with(|model| {
            model.batches.retain(|known| known != id);
            model.batches.push_front(id.to_owned());
            model.batches.truncate(BATCHES_KEEP);
        });
    }

    /// The batches the panel follows, newest first.
    pub fn batches(&self) -> Vec<String> {
        self.with(|model| model.batches.iter().cloned().collect())
    }

    /// One request at the door: its answer, the first [`BODY_KEEP`] bytes of its body
    /// (`excerpt`) and the body's whole `size`.
    pub fn door(
        &self,
        answer: (bool, &str, u16),
        excerpt: &[u8],
        size: usize,
        headers: &axum::http::HeaderMap,
    ) {
        let (accepted, reason, status) = answer;
        let truncated = size > excerpt.len();
        let kind = (!truncated)
            .then(|| sinch::callback::parse(excerpt).ok())
            .flatten()
            .map(|c| c.kind().into_owned());
        let shown = String::from_utf8_lossy(excerpt).into_owned();
        let signature_headers = headers
            .keys()
            .map(|name| name.as_str())
            .filter(|name| name.starts_with("x-sinch-webhook-signature"))
            .map(str::to_owned)
            .collect();
        let at =
            pipeline::clock::rfc3339(pipeline::clock::unix_millis(std::time::SystemTime::now()));
        self.with(|model| {
            model.version += 1;
            model.door_seq += 1;
            if model.door.len() == DOOR_KEEP {
                model.door.pop_front();
            }
            model.door.push_back(DoorEntry {
                seq: model.door_seq,
                at,
                accepted,
                reason: reason.to_owned(),
                status,
                kind,
                size,
                body: shown,
                truncated,
                signature_headers,
            });
            if !accepted && reason == "stale_signature" {
                model.dead_letters_version += 1;
            }
        });
    }

    /// The dead-letter queue changed (a worker parked a callback, a redrive).
    pub fn dead_letters_changed(&self) {
        self.with(|model| {
            model.version += 1;
            model.dead_letters_version += 1;
        });
    }

    /// One event: the messages and inbound views follow it.
    pub fn event(&self, entry: &Entry) {
        let Ok(detail) = serde_json::from_str::<Value>(&entry.detail) else {
            return;
        };
        let text = |name: &str| detail[name].as_str().map(str::to_owned);
        self.with(|model| {
            model.version += 1;
            let version = model.version;
            match entry.detail_type.as_str() {
                pipeline::events::MESSAGE_STATUS_CHANGED => {
                    let ours = detail["message_id"].is_string();
                    let Some(id) = text("message_id")
                        .or_else(|| text("sinch_message_id"))
                        .or_else(|| {
                            Some(format!(
                                "{}/{}",
                                text("sinch_batch_id")?,
                                text("recipient")?
                            ))
                        })
                    else {
                        return;
                    };
                    let status = text("status").unwrap_or_default();
                    let reason = detail.get("reason").cloned().filter(|r| !r.is_null());
                    let view = model
                        .messages
                        .entry(id.clone())
                        .or_insert_with(|| MessageView {
                            id: id.clone(),
                            ours,
                            channel: None,
                            status: String::new(),
                            rank: 0,
                            terminal: false,
                            reason: None,
                            steps: Vec::new(),
                            version: 0,
                        });
                    let rank = detail["rank"].as_u64().unwrap_or_default();
                    // Events may come in any order: the highest rank stands, every step is kept
                    // in rank order.
                    if rank >= view.rank {
                        view.status = status.clone();
                        view.rank = rank;
                        view.terminal = detail["final"].as_bool().unwrap_or_default();
                        view.reason = reason.clone();
                    }
                    if view.channel.is_none() || rank >= view.rank {
                        view.channel = text("channel").or(view.channel.take());
                    }
                    if !view.steps.iter().any(|s| s.status == status) {
                        view.steps.push(Step {
                            status,
                            at: text("at").unwrap_or_default(),
                            reason,
                        });
                        view.steps.sort_by_key(|step| {
                            pipeline::status::Status::from(step.status.as_str())
                                .progress()
                                .rank
                        });
                    }
                    let previous = std::mem::replace(&mut view.version, version);
                    model.recency.remove(&previous);
                    model.recency.insert(version, id);
                    while model.messages.len() > MESSAGES_KEEP {
                        let Some((_, oldest)) = model.recency.pop_first() else {
                            break;
                        };
                        model.messages.remove(&oldest);
                    }
                    // A reply's status shows with the message it answered.
                    if let Some(inbound) = detail["message_id"]
                        .as_str()
                        .and_then(|id| id.strip_prefix("rpl_"))
                        && let Some(view) = model.inbound.iter_mut().find(|v| v.id == inbound)
                    {
                        view.version = version;
                    }
                }
                pipeline::events::MESSAGE_RECEIVED => {
                    if model.inbound.len() == INBOUND_KEEP {
                        model.inbound.pop_front();
                    }
                    model.inbound.push_back(InboundView {
                        id: text("message_id").unwrap_or_default(),
                        channel: text("channel").unwrap_or_default(),
                        from: text("from").unwrap_or_default(),
                        text: text("text"),
                        media: detail["media"]
                            .as_array()
                            .map(|urls| {
                                urls.iter()
                                    .filter_map(|u| u.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        received_at: text("received_at").unwrap_or_default(),
                        reply_id: None,
                        reply_text: None,
                        version,
                    });
                }
                pipeline::events::REPLY_SENT => {
                    let answered = text("in_reply_to").unwrap_or_default();
                    if let Some(view) = model.inbound.iter_mut().find(|v| v.id == answered) {
                        view.reply_id = text("message_id");
                        view.reply_text = text("text");
                        view.version = version;
                    }
                }
                pipeline::events::CALLBACK_DEAD_LETTERED => model.dead_letters_version += 1,
                _ => {}
            }
        });
    }

    /// Where things stand; `page` of the messages (newest changed first).
    pub fn state(&self, page: usize) -> Value {
        self.with(|model| {
            json!({
                "version": model.version,
                "door_seq": model.door_seq,
                "dead_letters_version": model.dead_letters_version,
                "messages": messages_page(model, page),
                "door": model.door.iter().rev().take(50).collect::<Vec<_>>(),
                "inbound": inbound_views(model, 0),
            })
        })
    }

    /// What changed since `since` (a previous answer's `version`, `door_seq`); `None` when
    /// nothing did.
    pub fn changes(&self, since: &Cursor) -> Option<(Value, Cursor)> {
        self.with(|model| {
            if model.version == since.version {
                return None;
            }
            let messages: Vec<&MessageView> = model
                .recency
                .range(since.version.saturating_add(1)..)
                .rev()
                .take(PAGE * 4)
                .filter_map(|(_, id)| model.messages.get(id))
                .collect();
            let door: Vec<&DoorEntry> = model
                .door
                .iter()
                .rev()
                .take_while(|entry| entry.seq > since.door_seq)
                .take(50)
                .collect();
            let cursor = Cursor {
                version: model.version,
                door_seq: model.door_seq,
                dead_letters_version: model.dead_letters_version,
            };
            let update = json!({
                "version": model.version,
                "messages_total": model.messages.len(),
                "messages": messages,
                "door": door,
                "door_total": model.door_seq,
                "inbound": inbound_views(model, since.version),
                "dead_letters_changed": model.dead_letters_version != since.dead_letters_version,
            });
            Some((update, cursor))
        })
    }
}

/// Where a page's stream starts (what its `GET /console/state` said).
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
pub struct CursorQuery {
    /// The state's version the page has.
    #[serde(default)]
    pub version: u64,
    /// The last door entry the page has.
    #[serde(default)]
    pub door_seq: u64,
    /// The dead-letter list's version the page has.
    #[serde(default)]
    pub dead_letters_version: u64,
}

/// Where a stream of updates stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The state's version.
    pub version: u64,
    /// The last door entry sent.
    pub door_seq: u64,
    /// The dead-letter list's version.
    pub dead_letters_version: u64,
}

fn messages_page(model: &Model, page: usize) -> Value {
    let items: Vec<&MessageView> = model
        .recency
        .values()
        .rev()
        .skip(page.saturating_mul(PAGE))
        .take(PAGE)
        .filter_map(|id| model.messages.get(id))
        .collect();
    json!({
        "page": page,
        "per_page": PAGE,
        "total": model.messages.len(),
        "items": items,
    })
}

/// Inbound messages changed after `since` (all kept ones for 0), newest first, with their
/// reply's status.
fn inbound_views(model: &Model, since: u64) -> Vec<Value> {
    model
        .inbound
        .iter()
        .rev()
        .filter(|view| view.version > since)
        .take(100)
        .map(|view| {
            let mut value = serde_json::to_value(view).unwrap_or_default();
            if let Some(reply) = view.reply_id.as_ref().and_then(|id| model.messages.get(id)) {
                value["reply_status"] = json!(reply.status);
            }
            value
        })
        .collect()
}

/// Follows the stack's events into the console.
pub fn follow(console: Arc<Console>, sink: &MemorySink) {
    let mut events = sink.subscribe();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(entry) => console.event(&entry),
                // Fell behind (a burst): the page still shows the latest of each message.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

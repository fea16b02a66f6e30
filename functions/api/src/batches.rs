//! `POST /batches`, `GET /batches/{id}`, `DELETE /batches/{id}`: one request, up to 10,000
//! recipients, each its own message (its own id, status and events).
//!
//! The body is that of `POST /messages` without `to` (every field, every rule: [`crate::request`]),
//! plus `recipients: [{"to", "parameters"?, "metadata"?}]`. A recipient's `parameters` fill the
//! `${name}` placeholders of `text` and of the template's parameters; its `metadata` (an object)
//! is merged over the shared one. Each recipient is validated and judged by the rules
//! (opt-out, WhatsApp's window) on its own; the ones that fail are refused with their code, the
//! others accepted. Batches go by the bulk lane; `priority: transactional` puts one in the fast lane
//! only for a caller in `FAST_LANE_BATCH_CALLERS` (else 403 `priority_not_allowed`).
//!
//! | request | answer |
//! |---|---|
//! | `POST /batches`, valid | 202 `{"id": "bat_...", "accepted": N, "refused": [{"code", "message", "recipients": [<position in recipients>, ...]}], "status", "scheduled_at"?, "sms"?: {"messages", "parts", "max_parts", "encodings": {"GSM-7": n, "UCS-2": n}}}`, `Location: /batches/{id}`: bounded whatever the size (no number; positions, by code), so it is stored with the key and with the batch |
//! | the same request again (same key) | the same answer, whenever it comes: from the key's record, or, after the key's lease ran out before it was completed, from the batch's own; nothing is judged, counted (the monthly cap) or written again, and the fan-outs are queued again (each message is made once) |
//! | no recipient, or more than 10,000 | 400 `recipients_missing` / 422 `too_many_recipients` |
//! | more than 8 MiB once the shared body is in every recipient's message ([`MAX_EXPANDED_BYTES`]) | 422 `batch_too_large`, judged before anything is copied |
//! | a recipient listed twice (trimmed, on the same channel) | the first is a message; the others are refused `duplicate_recipient` |
//! | a rule that holds for every recipient broken (an unknown channel, no content, ...) | its code, for the whole batch |
//! | `GET /batches/{id}` | 200 `{"id", "total", "refused", "channel", "counts": {"<STATUS>": n}, "final", "canceled", "created_at", "scheduled_at"?, "completed_at"?}`; `final` when every message has ended for its channel (`DELIVERED` on SMS and MMS, which report no `READ`) |
//! | `DELETE /batches/{id}` | 200: what has not left ends `CANCELED`; 409 `not_cancelable` once every message has left (or ended) |
//! | another caller's batch, or none | 404 `not_found` |
//!
//! Accepting is cheap whatever the size: the recipients are validated and judged (one store read
//! per hundred), stored in chunks beside the batch item, and a fan-out job per chunk is queued
//! (or scheduled for `send_at`); the worker turns each chunk into its messages and their send
//! jobs. The Idempotency-Key works as for `POST /messages`: the batch's id is reserved with the
//! key, so a retry is the same batch.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use lambda_http::Request;
use pipeline::clock::{rfc3339, unix_millis};
use pipeline::envelope::Envelope;
use pipeline::jobs::{
    CANCEL_BATCH_JOB, CHUNK_RECIPIENTS, ChunkEntry, FAN_OUT_JOB, FanOut, OutboundJob,
};
use pipeline::queue::Queue;
use pipeline::schedule::{Lane, Scheduler};
use pipeline::send_rules::Check;
use pipeline::status::Status;
use pipeline::store::{BatchCancel, BatchRecord, ContactKey, Store};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tracing::{info, warn};

use crate::error::ApiError;
use crate::request::{Context, SMS_API, SendRequest, Valid};
use pipeline::schedule::is_later;

use crate::{Answer, Api, KeyFate, caller, dispatch, guards, plausible_id, unavailable};

/// The most recipients a batch takes.
pub const MAX_RECIPIENTS: usize = 10_000;

/// The body of `POST /batches`, as clients write it (the CLI does): the fields every
/// recipient's message shares (those of [`SendRequest`] but `to`, as JSON so a caller may
/// pass its own), and the recipients. The API reads it field by field (see the module docs).
#[derive(Debug, Clone, Default, Serialize)]
pub struct BatchRequest {
    /// The shared fields.
    #[serde(flatten)]
    pub shared: Map<String, Value>,
    /// At least one, at most [`MAX_RECIPIENTS`].
    pub recipients: Vec<Recipient>,
}

/// One recipient of a batch, as clients write it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Recipient {
    /// The recipient, as `to` of [`SendRequest`].
    pub to: String,
    /// Values for the `${name}` placeholders.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    /// Merged over the shared metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

impl Recipient {
    /// Its fields' names, as the API reads them.
    const FIELDS: [&str; 3] = ["to", "parameters", "metadata"];
}

/// The most a batch may expand to, as JSON: the shared body copied into each recipient's
/// message, plus each recipient's own parts. Judged before anything is copied, so a request
/// over it costs its body only; the largest accepted batch peaks well under the API's 128 MB
/// (measured by `scale::the_largest_batch_accepted_fits_in_the_apis_memory`; docs/sending.md).
pub const MAX_EXPANDED_BYTES: usize = 8 * 1024 * 1024;

/// Refusal code: the batch expands past [`MAX_EXPANDED_BYTES`].
pub const BATCH_TOO_LARGE: &str = "batch_too_large";

/// The length of `value` as JSON, without writing it anywhere.
fn json_len(value: &impl serde::Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).map_or(usize::MAX, |()| count.0)
}

/// A chunk's recipients are kept under this size (a DynamoDB item holds 400 KB).
const CHUNK_BYTES: usize = 300 * 1024;

/// Codes that concern one recipient, not the batch: a recipient failing with one is refused
/// alone.
const RECIPIENT_CODES: &[&str] = &[
    "invalid_recipient",
    "invalid_fallback",
    "parameter_missing",
    "invalid_parameters",
    "text_too_long",
    "too_many_parts",
    "time_zone_required",
    "metadata_too_large",
    "invalid_metadata",
    DUPLICATE_RECIPIENT,
];

/// Refusal code: the recipient is listed earlier in the same batch on the same channel (compared
/// as validated: trimmed); the first is the message, the others get none.
pub const DUPLICATE_RECIPIENT: &str = "duplicate_recipient";

/// One recipient, as refused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refused {
    /// Where the recipient is in the request's `recipients` (from 0): the answer names no
    /// number (it is stored with the key, where an erasure does not reach).
    pub index: u32,
    /// The refusal's code, as `POST /messages` would answer it.
    pub code: &'static str,
    /// The refusal, in words.
    pub message: String,
}

/// A batch whose recipients were validated (the rules that need the store come after the key is
/// claimed).
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The recipients that passed, in order.
    pub valid: Vec<Valid>,
    /// Where each of `valid` is in the request's `recipients`.
    pub positions: Vec<u32>,
    /// The ones that did not.
    pub refused: Vec<Refused>,
    /// The channel asked for.
    pub channel: String,
    /// When the fan-out is due (the shared `send_at`, or now).
    pub send_at_ms: u64,
}

/// The most one filled text may come to, in bytes: WhatsApp's 4,096 characters, each up to
/// four bytes. Filling stops there, so placeholders repeated with long parameters cannot
/// multiply a small body into gigabytes.
const MAX_FILLED_BYTES: usize = 4 * 4096;

/// Why a text could not be filled.
#[derive(Debug, PartialEq, Eq)]
enum Unfilled {
    /// A placeholder without its parameter.
    Missing(String),
    /// Filled, it would pass [`MAX_FILLED_BYTES`].
    TooLong,
}

/// Fills `${name}` placeholders of `text` from `parameters`, up to [`MAX_FILLED_BYTES`].
fn fill(text: &str, parameters: &Map<String, Value>) -> Result<String, Unfilled> {
    let mut out = String::with_capacity(text.len().min(MAX_FILLED_BYTES));
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if out.len() > MAX_FILLED_BYTES {
            return Err(Unfilled::TooLong);
        }
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        match parameters.get(name) {
            Some(Value::String(value)) => out.push_str(value),
            Some(Value::Number(value)) => out.push_str(&value.to_string()),
            Some(Value::Bool(value)) => out.push_str(&value.to_string()),
            _ => return Err(Unfilled::Missing(name.to_owned())),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if out.len() > MAX_FILLED_BYTES {
        return Err(Unfilled::TooLong);
    }
    Ok(out)
}

/// One recipient's request: the shared fields, its `to`, its parameters filled in, its
/// metadata merged.
fn recipient_request(
    shared: &Map<String, Value>,
    recipient: &Value,
    index: u32,
) -> Result<(String, Value), Refused> {
    let to = recipient
        .get("to")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let refuse = |code: &'static str, message: String| Refused {
        index,
        code,
        message,
    };
    let Some(recipient) = recipient.as_object() else {
        return Err(refuse(
            "invalid_recipient",
            "recipients[]: each is an object {\"to\", ...}".into(),
        ));
    };
    if let Some(unknown) = recipient
        .keys()
        .find(|k| !Recipient::FIELDS.contains(&k.as_str()))
    {
        return Err(refuse(
            "invalid_recipient",
            format!("recipients[].{unknown}: not a recipient's field (to, parameters, metadata)"),
        ));
    }
    let parameters = match recipient.get("parameters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            return Err(refuse(
                "invalid_parameters",
                "parameters: an object of names and values".into(),
            ));
        }
    };
    let missing = |unfilled: Unfilled| match unfilled {
        Unfilled::Missing(name) => refuse(
            "parameter_missing",
            format!("parameters: no value for ${{{name}}}"),
        ),
        Unfilled::TooLong => refuse(
            "text_too_long",
            format!("filled with its parameters, a text passes {MAX_FILLED_BYTES} bytes"),
        ),
    };
    let mut request = shared.clone();
    request.insert("to".into(), Value::String(to.clone()));
    if let Some(Value::String(text)) = request.get("text") {
        let filled = fill(text, &parameters).map_err(missing)?;
        request.insert("text".into(), Value::String(filled));
    }
    if let Some(Value::Object(template)) = request.get_mut("template") {
        for field in ["parameters", "omni_parameters"] {
            if let Some(Value::Object(values)) = template.get_mut(field) {
                for value in values.values_mut() {
                    if let Value::String(text) = value {
                        *text = fill(text, &parameters).map_err(missing)?;
                    }
                }
            }
        }
    }
    match recipient.get("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(own)) => {
            let mut merged = match request.get("metadata") {
                Some(Value::Object(shared)) => shared.clone(),
                _ => Map::new(),
            };
            merged.extend(own.clone());
            request.insert("metadata".into(), Value::Object(merged));
        }
        Some(_) => {
            return Err(refuse(
                "invalid_metadata",
                "recipients[].metadata: must be a JSON object".into(),
            ));
        }
    }
    Ok((to, Value::Object(request)))
}

/// Validates a batch's body: every recipient on its own (see the module docs).
pub fn prepare(body: &[u8], context: &Context<'_>) -> Result<Prepared, ApiError> {
    let mut shared: Map<String, Value> = serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::bad_request("malformed_json", format!("the body is not JSON: {e}"))
        } else {
            ApiError::bad_request(
                "invalid_request",
                format!("the body must be an object: {e}"),
            )
        }
    })?;
    let recipients = match shared.remove("recipients") {
        Some(Value::Array(recipients)) if !recipients.is_empty() => recipients,
        _ => {
            return Err(ApiError::bad_request(
                "recipients_missing",
                "recipients: an array of at least one {\"to\", \"parameters\"?, \"metadata\"?}",
            ));
        }
    };
    if recipients.len() > MAX_RECIPIENTS {
        return Err(ApiError::unprocessable(
            "too_many_recipients",
            format!("recipients: {}, at most {MAX_RECIPIENTS}", recipients.len()),
        ));
    }
    if shared.contains_key("to") {
        return Err(ApiError::bad_request(
            "invalid_request",
            "to: a batch's recipients are in recipients[]",
        ));
    }
    // What copying the shared body into every recipient would make, before any copy.
    let shared_bytes = json_len(&shared);
    let expanded = recipients.iter().fold(
        shared_bytes.saturating_mul(recipients.len()),
        |sum, recipient| sum.saturating_add(json_len(recipient)),
    );
    if expanded > MAX_EXPANDED_BYTES {
        return Err(ApiError::unprocessable(
            BATCH_TOO_LARGE,
            format!(
                "the batch expands to {expanded} bytes (its shared body, {shared_bytes} bytes, in each of its {} messages, and their own parts); at most {MAX_EXPANDED_BYTES}: send it in smaller batches, or with less shared content",
                recipients.len()
            ),
        ));
    }
    let channel = shared
        .get("channel")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_uppercase();
    let mut valid: Vec<Valid> = Vec::with_capacity(recipients.len());
    let mut positions: Vec<u32> = Vec::with_capacity(recipients.len());
    let mut refused = Vec::new();
    // Each recipient once: by the normalised identity, on the channel asked for.
    let mut seen = HashMap::with_capacity(recipients.len());
    let mut filled_total: usize = 0;
    for (index, recipient) in recipients.iter().enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        let (_, request) = match recipient_request(&shared, recipient, index) {
            Ok(parts) => parts,
            Err(refusal) => {
                refused.push(refusal);
                continue;
            }
        };
        // Filled in, the batch may still not pass the bound (placeholders multiply).
        filled_total = filled_total.saturating_add(json_len(&request));
        if filled_total > MAX_EXPANDED_BYTES {
            return Err(ApiError::unprocessable(
                BATCH_TOO_LARGE,
                format!(
                    "recipients[{index}]: with their parameters filled in, the messages so far come to {filled_total} bytes; at most {MAX_EXPANDED_BYTES}: send it in smaller batches, or with shorter parameters"
                ),
            ));
        }
        let checked = serde_json::from_value::<SendRequest>(request)
            .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))
            .and_then(|request| request.validate(context));
        match checked {
            Ok(one) => match seen.entry((one.channel.clone(), one.to.clone())) {
                std::collections::hash_map::Entry::Occupied(first) => refused.push(Refused {
                    message: format!(
                        "recipients[{index}]: the recipient of recipients[{}] again; it gets one message",
                        first.get()
                    ),
                    index,
                    code: DUPLICATE_RECIPIENT,
                }),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(index);
                    valid.push(one);
                    positions.push(index);
                }
            },
            // What every recipient would break is the batch's to answer for.
            Err(error) if index == 0 && !RECIPIENT_CODES.contains(&error.code) => {
                return Err(error);
            }
            Err(error) => refused.push(Refused {
                index,
                code: error.code,
                message: error.message,
            }),
        }
    }
    let send_at_ms = valid
        .first()
        .map(|_| {
            // Read as validation read it (trimmed): every recipient passed it.
            shared
                .get("send_at")
                .and_then(Value::as_str)
                .and_then(|text| crate::request::instant(text, "send_at").ok())
                .unwrap_or(context.now_ms)
                .max(context.now_ms)
        })
        .unwrap_or(context.now_ms);
    Ok(Prepared {
        valid,
        positions,
        refused,
        channel,
        send_at_ms,
    })
}

/// The contacts a recipient's rules read: one per channel it may go on.
fn contacts_of(valid: &Valid) -> Vec<ContactKey> {
    valid
        .channels
        .iter()
        .map(|channel| {
            let channel = if channel == SMS_API { "SMS" } else { channel };
            ContactKey::new(channel, &valid.to)
        })
        .collect()
}

/// The message id of a batch's `k`th accepted recipient.
pub fn message_id(batch: &str, k: u32) -> String {
    format!("msg_{}_{k}", batch.trim_start_matches("bat_"))
}

fn fan_out_name(batch: &str, chunk: u32) -> String {
    format!("{batch}-{chunk}")
}

/// The rules, then the batch, its chunks and its answer stored, then a fan-out job per chunk.
/// A retry of a request whose batch is stored (its lease ran out before the key was completed)
/// replays that batch: nothing is judged, counted or written again.
pub(crate) async fn accept<S: Store, Q: Queue, C: Scheduler>(
    api: &Api<S, Q, C>,
    prepared: Prepared,
    caller: &str,
    id: &str,
    retried: bool,
    now_ms: u64,
) -> (Answer, KeyFate) {
    if retried {
        match api.store.batch(id).await {
            Ok(Some(batch)) => return replay(api, &batch, now_ms).await,
            Ok(None) => {}
            Err(error) => return unavailable("read batch", &error, KeyFate::Keep),
        }
    }
    let Prepared {
        valid,
        positions,
        mut refused,
        channel,
        send_at_ms,
    } = prepared;
    // The rules, for every recipient at once (a hundred contacts a read).
    let keys: Vec<Vec<ContactKey>> = valid.iter().map(contacts_of).collect();
    let flat: Vec<ContactKey> = keys.iter().flatten().cloned().collect();
    let states = match api.store.contacts(&flat).await {
        Ok(states) => states,
        Err(error) => return unavailable("read contacts", &error, KeyFate::Release),
    };
    let known: HashMap<&ContactKey, &pipeline::store::ContactState> =
        flat.iter().zip(&states).collect();
    let mut accepted: Vec<(u32, Valid)> = Vec::with_capacity(valid.len());
    for ((one, contacts), position) in valid.into_iter().zip(&keys).zip(positions) {
        let check = Check {
            contacts,
            whatsapp_free_form: one.needs_whatsapp_window,
            answering: None,
            expires_at_ms: None,
            accepted_at_ms: None,
            now_ms,
        };
        let refusal = contacts.iter().find_map(|contact| {
            let state = known.get(contact).copied().cloned().unwrap_or_default();
            api.config.send_rules.judge(contact, &state, &check)
        });
        let refusal = refusal
            .map(|refusal| (refusal.code, refusal.message))
            .or_else(|| {
                api.config
                    .guards
                    .country(&one.channels, &one.to)
                    .err()
                    .map(|error| {
                        guards::count_refusal(&api.config.metrics, &error);
                        (error.code, error.message)
                    })
            });
        match refusal {
            Some((code, message)) => refused.push(Refused {
                index: position,
                code,
                message,
            }),
            None => accepted.push((position, one)),
        }
    }
    // The monthly cap: as many as fit, counted once per batch (a replay counts nothing: it
    // returned above; a batch that cannot be stored gives its count back); the rest refused
    // one by one.
    let channels = accepted
        .first()
        .map(|(_, one)| one.channels.clone())
        .unwrap_or_default();
    if !accepted.is_empty() {
        let wanted = u32::try_from(accepted.len()).unwrap_or(u32::MAX);
        // The shared body's channel and fallbacks: every recipient may take the same ones.
        let (granted, held_by) = match api
            .config
            .guards
            .monthly_caps(&api.store, &channels, wanted, now_ms)
            .await
        {
            Ok(granted) => granted,
            Err(error) => return (error.into(), KeyFate::Release),
        };
        if granted < wanted {
            let over = api
                .config
                .guards
                .cap_reached(held_by.as_deref().unwrap_or(&channel), now_ms);
            guards::count_refusal(&api.config.metrics, &over);
            for (position, _) in accepted.split_off(usize::try_from(granted).unwrap_or(0)) {
                refused.push(Refused {
                    index: position,
                    code: over.code,
                    message: over.message.clone(),
                });
            }
        }
    }
    let lane = accepted.first().map_or(Lane::Bulk, |(_, v)| v.lane);
    let total = u32::try_from(accepted.len()).unwrap_or(u32::MAX);
    // Chunks of recipients, each under CHUNK_BYTES; each recipient's parts are moved into its
    // entry and dropped once written into its chunk (no second copy of the batch is held).
    let mut chunks: Vec<String> = Vec::new();
    let mut current: Vec<ChunkEntry> = Vec::new();
    let mut size = 0;
    let mut sms = SmsSummary::default();
    for (k, (_, one)) in accepted.into_iter().enumerate() {
        let k = u32::try_from(k).unwrap_or(u32::MAX);
        if let Some(parts) = &one.sms {
            sms.add(parts.encoding, parts.parts);
        }
        let entry = ChunkEntry {
            index: k,
            channel: one.channel,
            metadata: one.metadata,
            due_ms: one.due_ms,
            job: OutboundJob {
                id: message_id(id, k),
                to: one.to,
                route: one.route,
                expires_at_ms: one.expires_at_ms,
                batch: Some(id.to_owned()),
                lane: one.lane,
                quiet_hours: one.quiet_hours,
            },
        };
        let entry_size = json_len(&entry);
        if (size + entry_size > CHUNK_BYTES || current.len() >= CHUNK_RECIPIENTS)
            && !current.is_empty()
        {
            chunks.push(serde_json::to_string(&current).unwrap_or_default());
            current.clear();
            size = 0;
        }
        size += entry_size;
        current.push(entry);
    }
    if !current.is_empty() {
        chunks.push(serde_json::to_string(&current).unwrap_or_default());
    }
    let scheduled = is_later(send_at_ms, now_ms);
    let record = BatchRecord {
        id: id.to_owned(),
        caller: caller.to_owned(),
        channel,
        total,
        refused: u32::try_from(refused.len()).unwrap_or(u32::MAX),
        chunks: u32::try_from(chunks.len()).unwrap_or(u32::MAX),
        created_at_ms: now_ms,
        send_at_ms: scheduled.then_some(send_at_ms),
        canceled: false,
        finals: 0,
        completed_at_ms: (total == 0).then_some(now_ms),
    };
    let mut body = json!({
        "id": id,
        "accepted": total,
        "refused": grouped(&refused),
        "status": if scheduled { Status::Scheduled } else { Status::Accepted }.as_str(),
    });
    if scheduled {
        body["scheduled_at"] = rfc3339(send_at_ms).into();
    }
    if sms.messages > 0 {
        body["sms"] = json!(sms);
    }
    let answer = body.to_string();
    if let Err(error) = api.store.create_batch(&record, &chunks, &answer).await {
        // Not stored (a write whose answer was lost may have been: then its replay counts
        // nothing, and the count stands).
        if matches!(api.store.batch(id).await, Ok(None)) {
            api.config
                .guards
                .give_back(&api.store, &channels, total, now_ms)
                .await;
        }
        return unavailable("store batch", &error, KeyFate::Keep);
    }
    if let Err(detail) = fan_out(api, &record, lane, now_ms).await {
        // The batch and the chunks queued so far stand: the retry (same key, same id) replays
        // the batch and queues them all again, and a fan-out twice makes each message once.
        return unavailable("queue batch", &detail, KeyFate::Keep);
    }
    info!(batch = %id, total, refused = refused.len(), chunks = record.chunks, scheduled, "batch accepted");
    (accepted_answer(id, body), KeyFate::Complete)
}

/// A stored batch again, for a retry of its request: its fan-outs queued again (a fan-out
/// twice makes each message once), and the answer its request gave.
async fn replay<S: Store, Q: Queue, C: Scheduler>(
    api: &Api<S, Q, C>,
    batch: &BatchRecord,
    now_ms: u64,
) -> (Answer, KeyFate) {
    let answer = match api.store.batch_answer(&batch.id).await {
        Ok(answer) => answer.and_then(|text| serde_json::from_str::<Value>(&text).ok()),
        Err(error) => return unavailable("read batch", &error, KeyFate::Keep),
    };
    // Stored before its answer was (an older batch): what the record says.
    let body = answer.unwrap_or_else(|| {
        json!({
            "id": batch.id,
            "accepted": batch.total,
            "refused": [],
            "status": if batch.send_at_ms.is_some() { Status::Scheduled } else { Status::Accepted }.as_str(),
        })
    });
    if !batch.canceled
        && let Err(detail) = fan_out(api, batch, Lane::Bulk, now_ms).await
    {
        return unavailable("queue batch", &detail, KeyFate::Keep);
    }
    info!(batch = %batch.id, "batch replayed");
    (accepted_answer(&batch.id, body), KeyFate::Complete)
}

/// A fan-out job per chunk of `batch`, on `lane`, now or at its `send_at`.
async fn fan_out<S: Store, Q: Queue, C: Scheduler>(
    api: &Api<S, Q, C>,
    batch: &BatchRecord,
    lane: Lane,
    now_ms: u64,
) -> Result<(), String> {
    let send_at_ms = batch.send_at_ms.unwrap_or(now_ms);
    for chunk in 0..batch.chunks {
        let job = FanOut {
            batch: batch.id.clone(),
            chunk,
        };
        let body = serde_json::to_string(&job).unwrap_or_default();
        let envelope = Envelope::job(FAN_OUT_JOB, body, SystemTime::now());
        dispatch(
            api,
            fan_out_name(&batch.id, chunk),
            lane,
            send_at_ms,
            envelope,
            now_ms,
        )
        .await?;
    }
    Ok(())
}

/// 202 with `body`, and where the batch can be read.
fn accepted_answer(id: &str, body: Value) -> Answer {
    Answer {
        location: Some(format!("/batches/{id}")),
        ..Answer::json(202, body)
    }
}

/// The refusals by code, each with the first one's words and the positions of every recipient
/// it refused (at 10,000 recipients, tens of kilobytes: the answer is stored with the key).
fn grouped(refused: &[Refused]) -> Value {
    let mut groups: Vec<(&'static str, &str, Vec<u32>)> = Vec::new();
    let mut sorted: Vec<&Refused> = refused.iter().collect();
    sorted.sort_by_key(|refusal| refusal.index);
    for refusal in sorted {
        match groups.iter_mut().find(|(code, _, _)| *code == refusal.code) {
            Some((_, _, indexes)) => indexes.push(refusal.index),
            None => groups.push((refusal.code, &refusal.message, vec![refusal.index])),
        }
    }
    Value::Array(
        groups
            .into_iter()
            .map(|(code, message, recipients)| {
                json!({"code": code, "message": message, "recipients": recipients})
            })
            .collect(),
    )
}

/// What the SMS API will bill for the accepted recipients: messages and parts, by encoding.
#[derive(Debug, Default, serde::Serialize)]
struct SmsSummary {
    messages: u32,
    parts: u32,
    max_parts: u32,
    encodings: BTreeMap<&'static str, u32>,
}

impl SmsSummary {
    fn add(&mut self, encoding: pipeline::sms_parts::Encoding, parts: u32) {
        self.messages += 1;
        self.parts += parts;
        self.max_parts = self.max_parts.max(parts);
        let name = match encoding {
            pipeline::sms_parts::Encoding::Gsm7 => "GSM-7",
            pipeline::sms_parts::Encoding::Ucs2 => "UCS-2",
        };
        *self.encodings.entry(name).or_default() += 1;
    }
}

/// A batch of this caller's, or the answer to give instead.
async fn owned<S: Store, Q: Queue, C: Scheduler>(
    api: &Api<S, Q, C>,
    request: &Request,
    id: &str,
) -> Result<BatchRecord, Answer> {
    let not_found = || ApiError::new(404, "not_found", "no such batch").into();
    if !plausible_id(id) || !id.starts_with("bat_") {
        return Err(not_found());
    }
    match api.store.batch(id).await {
        Ok(Some(batch)) if batch.caller == caller(request) => Ok(batch),
        Ok(_) => Err(not_found()),
        Err(error) => Err(ApiError::unavailable_because("read batch", &error).into()),
    }
}

/// `GET /batches/{id}`: its messages counted by status.
pub(crate) async fn read<S: Store, Q: Queue, C: Scheduler>(
    api: &Api<S, Q, C>,
    request: &Request,
    id: &str,
) -> Answer {
    let batch = match owned(api, request, id).await {
        Ok(batch) => batch,
        Err(answer) => return answer,
    };
    let tallied = match counts(api, id, batch.total).await {
        Ok(tallied) => tallied,
        Err(error) => return ApiError::unavailable_because("read messages", &error).into(),
    };
    let now_ms = unix_millis(api.clock.now());
    // A message not made yet (its chunk not fanned out) is where the batch is.
    let pending = if batch.canceled {
        Status::Canceled
    } else if batch.send_at_ms.is_some_and(|at| at > now_ms) {
        Status::Scheduled
    } else {
        Status::Accepted
    };
    let made: u32 = tallied.iter().map(|(_, n)| n).sum();
    let not_made = (pending, batch.total.saturating_sub(made));
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut finals: u64 = 0;
    for (status, n) in tallied.into_iter().chain([not_made]) {
        if n == 0 {
            continue;
        }
        if status.settles_on(Some(&batch.channel)) {
            finals += u64::from(n);
        }
        *counts.entry(status.as_str().to_uppercase()).or_default() += u64::from(n);
    }
    let mut view = json!({
        "id": id,
        "total": batch.total,
        "refused": batch.refused,
        "channel": batch.channel,
        "counts": counts,
        // Each message final for the channel it went on (the store's count, which knows a
        // fallback's channel), or by these counts.
        "final": batch.completed_at_ms.is_some() || finals == u64::from(batch.total),
        "canceled": batch.canceled,
        "created_at": rfc3339(batch.created_at_ms),
    });
    if let Some(at) = batch.send_at_ms {
        view["scheduled_at"] = rfc3339(at).into();
    }
    if let Some(at) = batch.completed_at_ms {
        view["completed_at"] = rfc3339(at).into();
    }
    Answer::json(200, view)
}

/// How many of a batch's messages made so far hold each status: its tally, or for a batch
/// stored before batches had one, its messages read one by one.
async fn counts<S: Store, Q: Queue, C: Scheduler>(
    api: &Api<S, Q, C>,
    id: &str,
    total: u32,
) -> Result<Vec<(Status, u32)>, pipeline::store::StoreError> {
    if let Some(tallied) = api.store.batch_counts(id, total).await? {
        return Ok(tallied);
    }
    let ids: Vec<String> = (0..total).map(|k| message_id(id, k)).collect();
    Ok(pipeline::status::count(
        api.store.statuses(&ids).await?.into_iter().flatten(),
    ))
}

/// `DELETE /batches/{id}`: what has not left ends `CANCELED`.
pub(crate) async fn cancel<S: Store, Q: Queue, C: Scheduler>(
    api: &Api<S, Q, C>,
    request: &Request,
    id: &str,
) -> Answer {
    let batch = match owned(api, request, id).await {
        Ok(batch) => batch,
        Err(answer) => return answer,
    };
    // Nothing to cancel once every message has left (made, and handed to Sinch or ended):
    // a 200 would say it stopped something.
    if !batch.canceled {
        match counts(api, id, batch.total).await {
            Ok(tallied) => {
                let left: u32 = tallied
                    .iter()
                    .filter(|(status, _)| !matches!(status, Status::Accepted | Status::Scheduled))
                    .map(|(_, n)| n)
                    .sum();
                if batch.total > 0 && left >= batch.total {
                    return ApiError::new(409, "not_cancelable", "every message of it has left")
                        .into();
                }
            }
            Err(error) => return ApiError::unavailable_because("read messages", &error).into(),
        }
    }
    match api.store.cancel_batch(id).await {
        Ok(BatchCancel::Canceled) => {}
        Ok(BatchCancel::Completed) => {
            return ApiError::new(409, "not_cancelable", "every message of it has ended").into();
        }
        Ok(BatchCancel::Missing) => return ApiError::new(404, "not_found", "no such batch").into(),
        Err(error) => return ApiError::unavailable_because("cancel batch", &error).into(),
    }
    // Its fan-outs not yet due are dropped (a fan-out that runs anyway makes its messages
    // CANCELED); the messages already made are canceled chunk by chunk by the worker, on the
    // fast lane. Each of them also checks the batch just before it leaves.
    let now_ms = unix_millis(api.clock.now());
    for chunk in 0..batch.chunks {
        if let Err(error) = api.scheduler.cancel(&fan_out_name(id, chunk)).await {
            warn!(%error, batch = %id, chunk, "a fan-out's schedule could not be removed; it will find the batch canceled");
        }
        let body = serde_json::to_string(&FanOut {
            batch: id.to_owned(),
            chunk,
        })
        .unwrap_or_default();
        let envelope = Envelope::job(CANCEL_BATCH_JOB, body, SystemTime::now());
        if let Err(detail) = dispatch(
            api,
            String::new(),
            Lane::Transactional,
            now_ms,
            envelope,
            now_ms,
        )
        .await
        {
            warn!(%detail, batch = %id, chunk, "a cancel job could not be queued; the batch's messages still find it canceled when they would leave");
        }
    }
    info!(batch = %id, "batch canceled");
    read(api, request, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_from_the_recipients_parameters() {
        let parameters: Map<String, Value> =
            serde_json::from_value(json!({"name": "Ada", "n": 3})).unwrap();
        assert_eq!(
            fill("Hi ${name}, ${n} left", &parameters).unwrap(),
            "Hi Ada, 3 left"
        );
        assert_eq!(
            fill("no placeholders", &parameters).unwrap(),
            "no placeholders"
        );
        assert_eq!(
            fill("${missing}", &parameters).unwrap_err(),
            Unfilled::Missing("missing".into())
        );
        // Placeholders repeated with a long parameter stop at the bound, not at gigabytes.
        let long: Map<String, Value> =
            serde_json::from_value(json!({"a": "x".repeat(50_000)})).unwrap();
        assert_eq!(
            fill(&"${a}".repeat(4000), &long).unwrap_err(),
            Unfilled::TooLong
        );
        assert_eq!(fill("half ${open", &parameters).unwrap(), "half ${open");
        assert_eq!(message_id("bat_01J", 7), "msg_01J_7");
    }

    #[test]
    fn a_recipient_is_written_with_the_fields_it_is_read_with() {
        let recipient = Recipient {
            to: "+46701234567".into(),
            parameters: BTreeMap::from([("name".into(), "Ada".into())]),
            metadata: Some(Map::new()),
        };
        let written = serde_json::to_value(recipient).unwrap();
        let names: Vec<&str> = written
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(names.len(), Recipient::FIELDS.len());
        assert!(names.iter().all(|name| Recipient::FIELDS.contains(name)));
    }
}

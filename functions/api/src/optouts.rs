//! The opt-out list as data: read one, set one, lift one, and page through them all. An
//! opt-out set here is the same state a STOP sets (every send checks it when it is accepted and
//! again just before it leaves), and each change is an event (`Contact Opted Out` / `Contact
//! Opted In`, `by` `api` or `import`).
//!
//! | request | answer |
//! |---|---|
//! | `GET /optouts/{channel}/{identity}` | 200 the opt-out (below); 404 `not_found` when they are not opted out |
//! | `PUT /optouts/{channel}/{identity}`, no body or `{"by": "api" \| "import", "at"?: RFC 3339}` | 200 the opt-out, `changed: true`; already opted out: `changed: false`, and the first opt-out stands (its source and time); a change older (`at`) than the opt-out or opt-in that stands: `changed: false`, and what stands is answered (`opted_out: false` here) |
//! | `DELETE /optouts/{channel}/{identity}`, the same body | 200 `{channel, identity, opted_out: false, changed}` (`changed: false` when they were not opted out, or when the opt-out that stands is newer than `at`: then `opted_out: true`) |
//! | `GET /optouts?channel=&limit=&cursor=` | 200 `{"items": [opt-out, ...], "next_cursor"}`, in the order of `<channel>/<identity>`; `limit` 1 to 1000 (100); `next_cursor` absent on the last page |
//! | a channel Sinch does not name (`SMS_API` counts as `SMS`) | 400 `invalid_channel` |
//! | an identity that is not E.164 on a phone channel (`+` optional, `%2B` in a URL), or empty or over 256 characters elsewhere | 400 `invalid_identity` |
//! | a bad `limit`, `cursor`, or body (not that JSON, or over 1 KiB) | 400 `invalid_limit` / `invalid_cursor` / `invalid_body` |
//! | the store unavailable | 503 `unavailable`, `Retry-After` (every request here is safe to repeat) |
//!
//! An opt-out: `{"channel", "identity" (as stored: a phone number without +), "opted_out":
//! true, "by" (keyword, api, import, sinch), "reference" (the inbound message, or the change's
//! own id), "opted_out_at" (RFC 3339)}`. Opt-outs belong to the deployment, not to one caller:
//! any caller allowed to invoke the API reads and changes the same list.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::Request;
use pipeline::clock::{rfc3339, unix_millis};
use pipeline::queue::Queue;
use pipeline::schedule::Scheduler;
use pipeline::store::{ContactKey, ContactState, OptSource, OptWrite, Store};
use serde::Deserialize;
use serde_json::{Value, json};
use sinch::Channel;

use crate::{Answer, Api, ApiError, request};

/// The page size unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest page.
pub const MAX_LIMIT: usize = 1000;
/// The largest body `PUT` or `DELETE` takes.
const MAX_BODY_BYTES: usize = 1024;
/// The longest identity on channels whose identities are not phone numbers.
const MAX_IDENTITY_CHARS: usize = 256;

/// A channel as a path or a query names it (`SMS_API` is `SMS`: both APIs share opt-outs).
pub fn channel(name: &str) -> Result<Channel, ApiError> {
    let channel = match name {
        "SMS_API" => Channel::Sms,
        name => Channel::from(name),
    };
    if channel.is_known() {
        Ok(channel)
    } else {
        Err(ApiError::bad_request(
            "invalid_channel",
            format!(
                "channel: {name:?} is not one of {}",
                Channel::KNOWN.join(", ")
            ),
        ))
    }
}

/// The contact a `/optouts/{channel}/{identity}` path names, checked.
pub fn contact(channel_name: &str, identity: &str) -> Result<ContactKey, ApiError> {
    let channel = channel(channel_name)?;
    let identity = percent_encoding::percent_decode_str(identity)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("invalid_identity", "identity: not UTF-8"))?;
    let identity = identity.trim();
    if channel.is_phone() {
        let number = format!("+{}", identity.trim_start_matches('+'));
        if !request::is_e164(&number) {
            return Err(ApiError::bad_request(
                "invalid_identity",
                format!(
                    "identity: {identity:?} is not an E.164 number (7 to 15 digits, the + optional)"
                ),
            ));
        }
    } else if identity.is_empty() || identity.chars().count() > MAX_IDENTITY_CHARS {
        return Err(ApiError::bad_request(
            "invalid_identity",
            format!("identity: a {channel} identity of 1 to {MAX_IDENTITY_CHARS} characters"),
        ));
    }
    Ok(ContactKey::new(channel.as_str(), identity))
}

/// An opt-out as answered.
fn view(contact: &ContactKey, state: &ContactState) -> Value {
    json!({
        "channel": contact.channel,
        "identity": contact.identity,
        "opted_out": state.opted_out_by.is_some(),
        "by": state.opt_source.as_ref().map_or("keyword", |source| source.as_str()),
        "reference": state.opted_out_by,
        "opted_out_at": state.opted_out_at_ms.map(rfc3339),
    })
}

/// `GET /optouts/{channel}/{identity}`.
pub async fn read<S: Store, Q: Queue, C: Scheduler>(
    api: &Api<S, Q, C>,
    contact: &ContactKey,
) -> Answer {
    match api.store.contact(contact).await {
        Ok(state) if state.opted_out_by.is_some() => Answer::json(200, view(contact, &state)),
        Ok(_) => ApiError::new(404, "not_found", format!("{contact} is not opted out")).into(),
        Err(error) => ApiError::unavailable_during("read opt-out", &error).into(),
    }
}

/// What `PUT` may say.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    #[serde(default)]
    by: Option<String>,
    /// When the person made the change (RFC 3339; an import's `opted_out_at`): an older change
    /// never overrides a newer one. Now when absent; at most a minute ahead.
    #[serde(default)]
    at: Option<String>,
}

/// How far ahead of now `at` may be (the clocks of the caller and of the API differ).
const AT_AHEAD_MS: u64 = 60_000;

/// `PUT` (opt out) and `DELETE` (opt back in) `/optouts/{channel}/{identity}`.
pub async fn set<S: Store, Q: Queue, C: Scheduler>(
    api: &Api<S, Q, C>,
    request: &Request,
    contact: &ContactKey,
    opted_out: bool,
) -> Answer {
    let now_ms = unix_millis(api.clock.now());
    let (source, at_ms) = match put_body(request, now_ms) {
        Ok(parts) => parts,
        Err(error) => return error.into(),
    };
    let reference = format!("{}_{}", source.as_str(), ulid::Ulid::generate());
    let write = OptWrite {
        contact,
        opted_out,
        source: &source,
        reference: &reference,
        at_ms,
    };
    let changed = match api.store.set_opt_out(&write).await {
        Ok(changed) => changed,
        Err(error) => return ApiError::unavailable_during("change opt-out", &error).into(),
    };
    tracing::info!(channel = %contact.channel, opted_out, changed, by = source.as_str(), "opt-out set");
    if !opted_out && changed {
        return Answer::json(
            200,
            json!({
                "channel": contact.channel,
                "identity": contact.identity,
                "opted_out": false,
                "changed": true,
            }),
        );
    }
    match api.store.contact(contact).await {
        Ok(state) if !opted_out && state.opted_out_by.is_none() => Answer::json(
            200,
            json!({
                "channel": contact.channel,
                "identity": contact.identity,
                "opted_out": false,
                "changed": false,
            }),
        ),
        Ok(state) => {
            let mut body = view(contact, &state);
            body["changed"] = json!(changed);
            Answer::json(200, body)
        }
        Err(error) => ApiError::unavailable_during("read opt-out", &error).into(),
    }
}

/// The source a `PUT` or `DELETE` names (`api` unless its body says `import`) and when the
/// change was made (`at`, or now).
fn put_body(request: &Request, now_ms: u64) -> Result<(OptSource, u64), ApiError> {
    let body = crate::body_bytes(request);
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!("the body: at most {MAX_BODY_BYTES} bytes"),
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((OptSource::Api, now_ms));
    }
    let body: PutBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!(
                "the body: {e} (it may be empty, or {{\"by\": \"api\" | \"import\", \"at\": RFC 3339}})"
            ),
        )
    })?;
    let source = match body.by.as_deref() {
        None | Some("api") => OptSource::Api,
        Some("import") => OptSource::Import,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_body",
                format!("by: {other:?} is not api or import"),
            ));
        }
    };
    let at_ms = match body.at.as_deref() {
        None => now_ms,
        Some(text) => {
            let at = time::OffsetDateTime::parse(
                text.trim(),
                &time::format_description::well_known::Rfc3339,
            )
            .ok()
            .and_then(|at| u64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_body",
                    format!("at: {text:?} is not an RFC 3339 time after 1970"),
                )
            })?;
            if at > now_ms.saturating_add(AT_AHEAD_MS) {
                return Err(ApiError::bad_request(
                    "invalid_body",
                    format!("at: {text} is in the future"),
                ));
            }
            at
        }
    };
    Ok((source, at_ms))
}

/// `GET /optouts`: one page.
pub async fn list<S: Store, Q: Queue, C: Scheduler>(
    api: &Api<S, Q, C>,
    request: &Request,
) -> Answer {
    let mut channel = None;
    let mut limit = DEFAULT_LIMIT;
    let mut after = None;
    for (name, value) in form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes()) {
        match &*name {
            "channel" => match self::channel(&value) {
                Ok(named) => channel = Some(named),
                Err(error) => return error.into(),
            },
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                _ => {
                    return ApiError::bad_request(
                        "invalid_limit",
                        format!("limit: {value:?} is not a number from 1 to {MAX_LIMIT}"),
                    )
                    .into();
                }
            },
            "cursor" => match cursor_key(&value) {
                Some(key) => after = Some(key),
                None => {
                    return ApiError::bad_request(
                        "invalid_cursor",
                        "cursor: not a next_cursor this API gave",
                    )
                    .into();
                }
            },
            _ => {}
        }
    }
    let page = match api
        .store
        .opt_outs(channel.as_ref(), after.as_ref(), limit)
        .await
    {
        Ok(page) => page,
        Err(error) => return ApiError::unavailable_during("list opt-outs", &error).into(),
    };
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|(contact, state)| view(contact, state))
        .collect();
    let mut body = json!({"items": items});
    if let Some(next) = page.next {
        body["next_cursor"] = json!(URL_SAFE_NO_PAD.encode(next.to_string()));
    }
    Answer::json(200, body)
}

/// The contact a `next_cursor` stands for.
fn cursor_key(cursor: &str) -> Option<ContactKey> {
    // No cursor this API gives is longer: a key of the index is at most 1,024 bytes.
    if cursor.len() > 2048 {
        return None;
    }
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (channel, identity) = text.split_once('/')?;
    let channel = Channel::from(channel);
    let fits = !identity.is_empty()
        && identity.chars().count() <= MAX_IDENTITY_CHARS
        && text.len() <= 1024;
    (channel.is_known() && fits).then(|| ContactKey {
        channel,
        identity: identity.to_owned(),
    })
}

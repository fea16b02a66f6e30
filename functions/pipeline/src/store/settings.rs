//! The store's settings: how long each kind of item is kept, and the key erased contacts'
//! opt-outs are hashed with.

use super::ContactKey;

/// How long each kind of item is kept (DynamoDB's TTL on `expires_at`; the in-memory store
/// keeps everything). Opt-outs are kept until the contact opts back in or is erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Inbound messages (their text included), from when they arrived.
    pub inbound: std::time::Duration,
    /// Message states and their history, batches, from their last change.
    pub messages: std::time::Duration,
    /// Contacts that are not opted out, from their last inbound message.
    pub contacts: std::time::Duration,
}

/// The default [`Retention::inbound`]: 90 days.
pub const DEFAULT_INBOUND_RETENTION_DAYS: u64 = 90;
/// The default [`Retention::messages`]: 90 days.
pub const DEFAULT_MESSAGE_RETENTION_DAYS: u64 = 90;
/// The default [`Retention::contacts`]: 365 days (WhatsApp's window needs only 24 hours; a year
/// keeps "who wrote to us" for support without keeping it forever).
pub const DEFAULT_CONTACT_RETENTION_DAYS: u64 = 365;

/// `INBOUND_RETENTION_DAYS`.
pub const INBOUND_RETENTION_DAYS: &str = "INBOUND_RETENTION_DAYS";
/// `MESSAGE_RETENTION_DAYS`.
pub const MESSAGE_RETENTION_DAYS: &str = "MESSAGE_RETENTION_DAYS";
/// `CONTACT_RETENTION_DAYS`.
pub const CONTACT_RETENTION_DAYS: &str = "CONTACT_RETENTION_DAYS";

impl Retention {
    /// The retention the environment sets (each 1 to 3,650 days; the defaults above).
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &crate::config::Env<F>,
    ) -> Result<Self, crate::config::ConfigError> {
        let days = |name, default| {
            env.number(name, default, 1..=3650)
                .map(|n: u64| std::time::Duration::from_secs(n * 86_400))
        };
        Ok(Self {
            inbound: days(INBOUND_RETENTION_DAYS, DEFAULT_INBOUND_RETENTION_DAYS)?,
            messages: days(MESSAGE_RETENTION_DAYS, DEFAULT_MESSAGE_RETENTION_DAYS)?,
            contacts: days(CONTACT_RETENTION_DAYS, DEFAULT_CONTACT_RETENTION_DAYS)?,
        })
    }
}

impl Default for Retention {
    fn default() -> Self {
        let days = |n: u64| std::time::Duration::from_secs(n * 86_400);
        Self {
            inbound: days(DEFAULT_INBOUND_RETENTION_DAYS),
            messages: days(DEFAULT_MESSAGE_RETENTION_DAYS),
            contacts: days(DEFAULT_CONTACT_RETENTION_DAYS),
        }
    }
}

/// Keys a contact's identity with the deployment's secret (`CONTACT_HASH_KEY`): what an
/// erased contact's opt-out is kept under, so that they stay opted out while nothing names
/// them. Without the key a phone number cannot be found from its hash (plain SHA-256 of a
/// number would be reversed by trying every number).
#[derive(Clone)]
pub struct ContactHasher {
    key: std::sync::Arc<[u8]>,
}

/// `CONTACT_HASH_KEY` (or `CONTACT_HASH_KEY_ARN`, a Secrets Manager secret).
pub const CONTACT_HASH_KEY: &str = "CONTACT_HASH_KEY";

/// The key used when none is configured: fine locally, never in a deployment (the template
/// generates one).
const LOCAL_HASH_KEY: &[u8] = b"sinch-hooks local key: not a secret, set CONTACT_HASH_KEY";

impl ContactHasher {
    /// A hasher with `key`.
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.into() }
    }

    /// The keyed hash of `contact` (HMAC-SHA256 of `<channel>/<identity>`, hex).
    pub fn of(&self, contact: &ContactKey) -> String {
        use hmac::{KeyInit, Mac};
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(contact.to_string().as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl ContactHasher {
    /// The hasher `CONTACT_HASH_KEY` keys (at least 16 characters); without it, the local key,
    /// with a warning (an erased contact's number could then be found from its hash).
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &crate::config::Env<F>,
    ) -> Result<Self, crate::config::ConfigError> {
        match env.optional(CONTACT_HASH_KEY) {
            Some(key) if key.len() >= 16 => Ok(Self::new(key.as_bytes())),
            Some(_) => Err(crate::config::ConfigError::new(
                CONTACT_HASH_KEY,
                "must be at least 16 characters",
            )),
            None => {
                tracing::warn!(
                    "CONTACT_HASH_KEY is not set: erased contacts' opt-outs are keyed with the local key (set it in any deployment)"
                );
                Ok(Self::default())
            }
        }
    }
}

impl Default for ContactHasher {
    fn default() -> Self {
        Self::new(LOCAL_HASH_KEY)
    }
}

impl std::fmt::Debug for ContactHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContactHasher([redacted])")
    }
}

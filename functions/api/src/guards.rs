//! Guards before any cost: where a send may go, how fast to one range of numbers, how many a
//! month. Each is off until configured; each refusal is counted as the `GuardRefused` metric
//! (dimension `Guard`: the code), which the template's alarms watch.
//!
//! | guard (setting) | applies to | refused | held |
//! |---|---|---|---|
//! | country allow-list (`ALLOWED_COUNTRIES`: E.164 prefixes, `46,47,+358`) | every recipient a phone channel may reach (`SMS_API`, SMS, WhatsApp, RCS, ...; the channel or any of its fallbacks), messages and batches | 422 `country_not_allowed` (remembered under the key, like any rule); the worker checks the same list again when a message leaves ([`pipeline::send_rules`]) | no state: the number's prefix |
//! | velocity per destination prefix (`DESTINATION_LIMIT` sends per `DESTINATION_WINDOW_SECS`, 3600, to numbers sharing their first `DESTINATION_PREFIX_DIGITS` digits, 6) | `POST /messages` that a phone channel may carry, fallbacks included (one-time codes are what SMS pumping drives; batches are the team's own lists) | 429 `rate_limited_destination`, `Retry-After`; not remembered under the key | a sliding-window counter per prefix in the table (`guard#dest/<prefix>`), a conditional write |
//! | monthly cap per channel (`MONTHLY_CAPS`: `SMS_API=10000,WHATSAPP=50000`) | messages, and each batch's recipients (as many as fit; the rest refused one by one), counted on every capped channel they may take: the one asked for and each fallback (`WHATSAPP` falling back to `SMS` counts on both caps) | 429 `monthly_cap_reached`, `Retry-After` until the month ends (UTC); not remembered under the key | a count per channel and month (`guard#cap/<channel>/<YYYY-MM>`), an atomic conditional add |
//!
//! **Held across concurrent calls.** Both counters are single items changed by conditional
//! writes, so however many API instances race, a cap is never overshot, and the velocity limit
//! holds for its estimate. The margin, documented: the sliding window is Cloudflare's
//! sliding-window counter (the previous fixed window weighted by the part of it still inside),
//! so in the worst case (the previous window's sends all at its very end) a true sliding window
//! can see up to twice the limit; on average it is exact. A count is taken when the message is
//! accepted (after every other rule): a message refused later (the store unavailable, say) still
//! counts, so counts err on the safe side.

use std::collections::BTreeMap;

use pipeline::config::{ConfigError, Env};
use pipeline::metrics::{Metric, Metrics};
use pipeline::store::{Counted, CounterStore};
use sinch::Channel;

use crate::ApiError;
use crate::request::{SMS_API, is_phone};

pub use pipeline::send_rules::ALLOWED_COUNTRIES;
use pipeline::send_rules::{COUNTRY_NOT_ALLOWED, Countries};
/// `DESTINATION_LIMIT` (0 or unset: no velocity limit).
pub const DESTINATION_LIMIT: &str = "DESTINATION_LIMIT";
/// `DESTINATION_WINDOW_SECS`.
pub const DESTINATION_WINDOW_SECS: &str = "DESTINATION_WINDOW_SECS";
/// `DESTINATION_PREFIX_DIGITS`.
pub const DESTINATION_PREFIX_DIGITS: &str = "DESTINATION_PREFIX_DIGITS";
/// `MONTHLY_CAPS`.
pub const MONTHLY_CAPS: &str = "MONTHLY_CAPS";
/// `FAST_LANE_BATCH_CALLERS`: the callers (as the API names them: IAM ARNs, comma-separated;
/// `*` any) whose batches may say `priority: transactional`.
pub const FAST_LANE_BATCH_CALLERS: &str = "FAST_LANE_BATCH_CALLERS";
/// Refusal code: a batch asked for the fast lane, and its caller may not put campaigns there.
pub const PRIORITY_NOT_ALLOWED: &str = "priority_not_allowed";

/// The velocity limit per destination prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Velocity {
    /// Sends a window, per prefix.
    pub limit: u32,
    /// The sliding window, ms.
    pub window_ms: u64,
    /// How many leading digits of the number (its country code included) make its prefix.
    pub prefix_digits: usize,
}

/// Every guard's setting; [`Guards::default`] guards nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guards {
    /// E.164 prefixes (digits, no `+`) a phone number must start with; empty: any (the
    /// worker holds the same list when the message leaves: [`pipeline::send_rules`]).
    pub allowed_countries: Countries,
    /// The velocity limit, when set.
    pub velocity: Option<Velocity>,
    /// Messages a calendar month (UTC), by channel as requests name it (`SMS_API`, `WHATSAPP`).
    pub monthly_caps: BTreeMap<String, u32>,
    /// Who may put a batch in the fast lane (`FAST_LANE_BATCH_CALLERS`); nobody by default, so
    /// that a campaign never goes ahead of the one-time codes.
    pub fast_lane_batch_callers: Vec<String>,
}

impl Guards {
    /// The guards the environment sets.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let limit: u32 = env.number(DESTINATION_LIMIT, 0, 0..=1_000_000)?;
        let window_secs: u64 = env.number(DESTINATION_WINDOW_SECS, 3600, 1..=86_400)?;
        let prefix_digits: usize = env.number(DESTINATION_PREFIX_DIGITS, 6, 2..=15)?;
        let mut monthly_caps = BTreeMap::new();
        for entry in env.optional(MONTHLY_CAPS).unwrap_or_default().split(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let parsed = entry.split_once('=').and_then(|(channel, cap)| {
                Some((channel.trim().to_owned(), cap.trim().parse::<u32>().ok()?))
            });
            match parsed {
                Some((channel, cap))
                    if channel == SMS_API || Channel::from(channel.as_str()).is_known() =>
                {
                    monthly_caps.insert(channel, cap);
                }
                _ => {
                    return Err(ConfigError::new(
                        MONTHLY_CAPS,
                        format!(
                            "{entry:?} is not CHANNEL=COUNT (e.g. SMS_API=10000,WHATSAPP=50000)"
                        ),
                    ));
                }
            }
        }
        Ok(Self {
            allowed_countries: Countries::from_env(env)?,
            velocity: (limit > 0).then_some(Velocity {
                limit,
                window_ms: window_secs * 1000,
                prefix_digits,
            }),
            monthly_caps,
            fast_lane_batch_callers: env
                .optional(FAST_LANE_BATCH_CALLERS)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|caller| !caller.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }

    /// Whether `caller`'s batches may take the fast lane.
    pub fn fast_lane_batches(&self, caller: &str) -> Result<(), ApiError> {
        if self
            .fast_lane_batch_callers
            .iter()
            .any(|allowed| allowed == "*" || allowed == caller)
        {
            return Ok(());
        }
        Err(ApiError::new(
            403,
            PRIORITY_NOT_ALLOWED,
            format!(
                "priority: transactional would put this campaign ahead of every one-time code; batches go by the bulk lane unless their caller is in {FAST_LANE_BATCH_CALLERS}"
            ),
        ))
    }

    /// The country allow-list, for a recipient `to` on `channels` (the channel asked for and
    /// its fallbacks: any phone channel among them puts the number under the list).
    pub fn country(&self, channels: &[String], to: &str) -> Result<(), ApiError> {
        if !channels.iter().any(|channel| is_phone(channel)) || self.allowed_countries.allows(to) {
            return Ok(());
        }
        Err(ApiError::unprocessable(
            COUNTRY_NOT_ALLOWED,
            format!(
                "the recipient's number is not in a country this deployment sends to ({})",
                self.allowed_countries.describe()
            ),
        ))
    }

    /// The velocity limit for one send to `to` on `channels` (any phone channel among them,
    /// fallbacks included), counted if it passes.
    pub async fn velocity<S: CounterStore>(
        &self,
        store: &S,
        channels: &[String],
        to: &str,
        now_ms: u64,
    ) -> Result<(), ApiError> {
        let Some(velocity) = self
            .velocity
            .filter(|_| channels.iter().any(|channel| is_phone(channel)))
        else {
            return Ok(());
        };
        let digits = to.trim_start_matches('+');
        let prefix = &digits[..velocity.prefix_digits.min(digits.len())];
        let key = format!("dest/{prefix}");
        match store
            .count_in_window(&key, velocity.window_ms, velocity.limit, now_ms)
            .await
        {
            Ok(Counted::Counted) => Ok(()),
            Ok(Counted::Limited { retry_after_ms }) => Err(ApiError {
                retry_after: Some(u32::try_from(retry_after_ms.div_ceil(1000)).unwrap_or(u32::MAX)),
                ..ApiError::new(
                    429,
                    "rate_limited_destination",
                    format!(
                        "to: numbers starting +{prefix} had {} sends in the last {} s, the most this deployment allows",
                        velocity.limit,
                        velocity.window_ms / 1000
                    ),
                )
            }),
            Err(error) => Err(ApiError::unavailable_because("count the send", &error)),
        }
    }

    /// The monthly cap on `channel`: how many of `wanted` sends it admits now (all when
    /// uncapped), counting them.
    pub async fn monthly_cap<S: CounterStore>(
        &self,
        store: &S,
        channel: &str,
        wanted: u32,
        now_ms: u64,
    ) -> Result<u32, ApiError> {
        let Some(&cap) = self.monthly_caps.get(channel) else {
            return Ok(wanted);
        };
        let (month, next_month_ms) = month_of(now_ms);
        let key = format!("cap/{channel}/{month}");
        store
            .count_up_to(&key, wanted, cap, next_month_ms / 1000 + 35 * 86_400)
            .await
            .map_err(|error| ApiError::unavailable_because("count the send", &error))
    }

    /// The monthly caps of every channel a message may take (the channel asked for, then its
    /// fallbacks: a fallback to SMS is an SMS), `wanted` of them: how many fit under all of
    /// them, and the channel whose cap held it back. Each capped channel counts what it
    /// granted (a message refused by a later cap still counts on an earlier one: counts err on
    /// the safe side).
    pub async fn monthly_caps<S: CounterStore>(
        &self,
        store: &S,
        channels: &[String],
        wanted: u32,
        now_ms: u64,
    ) -> Result<(u32, Option<String>), ApiError> {
        let mut granted = wanted;
        let mut held_by = None;
        for channel in channels {
            if granted == 0 {
                break;
            }
            let fits = self.monthly_cap(store, channel, granted, now_ms).await?;
            if fits < granted {
                granted = fits;
                held_by = Some(channel.clone());
            }
        }
        Ok((granted, held_by))
    }

    /// Gives `n` back to the monthly cap of every capped channel among `channels` (what
    /// [`Guards::monthly_caps`] granted for a batch that could not be stored), so that its
    /// retry counts them once. Best effort: a failure is logged, and the count errs high.
    pub async fn give_back<S: CounterStore>(
        &self,
        store: &S,
        channels: &[String],
        n: u32,
        now_ms: u64,
    ) {
        let (month, _) = month_of(now_ms);
        for channel in channels
            .iter()
            .filter(|c| self.monthly_caps.contains_key(*c))
        {
            let key = format!("cap/{channel}/{month}");
            if let Err(error) = store.count_down(&key, n).await {
                tracing::warn!(%error, %channel, n, "could not give a monthly cap's count back; it counts them twice");
            }
        }
    }

    /// The refusal for a send over `channel`'s monthly cap.
    pub fn cap_reached(&self, channel: &str, now_ms: u64) -> ApiError {
        let (month, next_month_ms) = month_of(now_ms);
        let cap = self.monthly_caps.get(channel).copied().unwrap_or(0);
        ApiError {
            retry_after: Some(
                u32::try_from(next_month_ms.saturating_sub(now_ms).div_ceil(1000))
                    .unwrap_or(u32::MAX),
            ),
            ..ApiError::new(
                429,
                "monthly_cap_reached",
                format!("channel: {channel} has sent its {cap} messages for {month} (UTC)"),
            )
        }
    }
}

/// Counts a refusal by a guard (or by anything: the metric names its code).
pub fn count_refusal(metrics: &Metrics, error: &ApiError) {
    if matches!(
        error.code,
        "country_not_allowed" | "rate_limited_destination" | "monthly_cap_reached"
    ) {
        metrics.count(Metric::GuardRefused, Some(("Guard", error.code)));
    }
}

/// The calendar month (UTC) of `now_ms` as `YYYY-MM`, and when the next one starts (Unix ms).
fn month_of(now_ms: u64) -> (String, u64) {
    let now = time::OffsetDateTime::from_unix_timestamp(i64::try_from(now_ms / 1000).unwrap_or(0))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (year, month) = (now.year(), now.month());
    let next = if month == time::Month::December {
        time::Date::from_calendar_date(year + 1, time::Month::January, 1)
    } else {
        time::Date::from_calendar_date(year, month.next(), 1)
    };
    let next_ms = next
        .map(|date| date.midnight().assume_utc().unix_timestamp())
        .ok()
        .and_then(|s| u64::try_from(s).ok())
        .map_or(now_ms, |s| s * 1000);
    (format!("{year:04}-{:02}", u8::from(month)), next_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<Guards, ConfigError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Guards::from_env(&Env::from_lookup(move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }))
    }

    #[test]
    fn settings_are_read_and_bad_ones_refused_with_their_name() {
        let guards = env(&[
            (ALLOWED_COUNTRIES, "46, +47,358"),
            (DESTINATION_LIMIT, "30"),
            (MONTHLY_CAPS, "SMS_API=10000, WHATSAPP=50"),
        ])
        .unwrap();
        assert_eq!(guards.allowed_countries.prefixes(), ["46", "47", "358"]);
        assert_eq!(
            guards.velocity,
            Some(Velocity {
                limit: 30,
                window_ms: 3_600_000,
                prefix_digits: 6
            })
        );
        assert_eq!(guards.monthly_caps["WHATSAPP"], 50);
        assert_eq!(env(&[]).unwrap(), Guards::default());
        for (name, value) in [
            (ALLOWED_COUNTRIES, "46,sweden"),
            (ALLOWED_COUNTRIES, "+046"),
            (ALLOWED_COUNTRIES, "1234567"),
            (DESTINATION_LIMIT, "-1"),
            (DESTINATION_WINDOW_SECS, "0"),
            (DESTINATION_PREFIX_DIGITS, "1"),
            (MONTHLY_CAPS, "SMS_API"),
            (MONTHLY_CAPS, "FAX=10"),
            (MONTHLY_CAPS, "SMS_API=lots"),
        ] {
            let error = env(&[(name, value)]).unwrap_err();
            assert_eq!(error.name, name, "{value}");
        }
    }

    #[test]
    fn the_allow_list_holds_for_phone_channels_only() {
        let guards = env(&[(ALLOWED_COUNTRIES, "46,1")]).unwrap();
        let on = |channels: &[&str]| -> Vec<String> {
            channels.iter().map(|c| (*c).to_owned()).collect()
        };
        assert!(guards.country(&on(&["SMS_API"]), "+46701234567").is_ok());
        assert!(guards.country(&on(&["WHATSAPP"]), "+15551234567").is_ok());
        let refused = guards
            .country(&on(&["SMS_API"]), "+88212345678")
            .unwrap_err();
        assert_eq!((refused.status, refused.code), (422, "country_not_allowed"));
        assert!(guards.country(&on(&["MESSENGER"]), "psid-1").is_ok());
        // A fallback to a phone channel puts the number under the list.
        assert!(
            guards
                .country(&on(&["MESSENGER", "SMS"]), "+88212345678")
                .is_err()
        );
    }

    #[test]
    fn months_end_where_the_calendar_says() {
        // 2025-12-31T23:59:59Z, 2024-02-10T00:00:00Z
        assert_eq!(
            month_of(1_767_225_599_000),
            ("2025-12".into(), 1_767_225_600_000)
        );
        assert_eq!(
            month_of(1_707_523_200_000),
            ("2024-02".into(), 1_709_251_200_000)
        );
    }
}

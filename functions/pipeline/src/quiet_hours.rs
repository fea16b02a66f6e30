//! Quiet hours: a message that would leave inside them waits (`SCHEDULED`) until they end, in
//! the recipient's time zone.
//!
//! | given | the zone |
//! |---|---|
//! | `time_zone` (an IANA name, `Europe/Stockholm`) | that one |
//! | none, a phone number whose country has one zone | the country's ([`zone_of_number`]) |
//! | none, a number whose country has several zones (`+1`, `+7`, `+61`, `+55`, ...), or no phone number | refused: `time_zone_required` |
//!
//! The window runs from `start` to `end` local time (`21:00` to `08:00` wraps midnight); a
//! message due inside it is held to the next `end`. Daylight saving time is the zone's (the tz
//! database is compiled in). Zones that differ only in name (Germany's `Europe/Busingen` keeps
//! Berlin's clock) count as one.

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};
use serde::{Deserialize, Serialize};

/// Refusal code: quiet hours without a zone, for a recipient whose zone cannot be told.
pub const TIME_ZONE_REQUIRED: &str = "time_zone_required";
/// Refusal code: quiet hours that do not parse.
pub const INVALID_QUIET_HOURS: &str = "invalid_quiet_hours";

/// Quiet hours as a request (or the deployment's `QUIET_HOURS`) gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// `HH:MM`, local.
    pub start: String,
    /// `HH:MM`, local.
    pub end: String,
    /// An IANA zone; by default the recipient's number's country's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// Why quiet hours cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuietError {
    /// [`INVALID_QUIET_HOURS`].
    #[error("quiet_hours: {0}")]
    Invalid(String),
    /// [`TIME_ZONE_REQUIRED`].
    #[error(
        "quiet_hours.time_zone: required for {0} (its country has several time zones, or none is known)"
    )]
    ZoneRequired(String),
}

impl QuietError {
    /// The refusal code.
    pub fn code(&self) -> &'static str {
        match self {
            QuietError::Invalid(_) => INVALID_QUIET_HOURS,
            QuietError::ZoneRequired(_) => TIME_ZONE_REQUIRED,
        }
    }
}

fn time_of(text: &str, field: &str) -> Result<Time, QuietError> {
    let (hours, minutes) = text
        .split_once(':')
        .ok_or_else(|| QuietError::Invalid(format!("{field}: {text:?} is not HH:MM")))?;
    let parse = |part: &str, max: i8| {
        part.parse::<i8>()
            .ok()
            .filter(|v| (0..=max).contains(v) && part.len() == 2)
            .ok_or_else(|| QuietError::Invalid(format!("{field}: {text:?} is not HH:MM")))
    };
    Time::new(parse(hours, 23)?, parse(minutes, 59)?, 0, 0)
        .map_err(|e| QuietError::Invalid(format!("{field}: {e}")))
}

impl QuietHours {
    /// The zone for recipient `to` (an E.164 number, or another channel's identity).
    pub fn zone(&self, to: &str) -> Result<TimeZone, QuietError> {
        match &self.time_zone {
            Some(name) => TimeZone::get(name).map_err(|_| {
                QuietError::Invalid(format!("time_zone: {name:?} is not an IANA time zone"))
            }),
            None => zone_of_number(to)
                .and_then(|name| TimeZone::get(name).ok())
                .ok_or_else(|| QuietError::ZoneRequired(to.to_owned())),
        }
    }

    /// Checks the times (and the zone, if given) without a recipient.
    pub fn check(&self) -> Result<(), QuietError> {
        time_of(&self.start, "start")?;
        time_of(&self.end, "end")?;
        if let Some(name) = &self.time_zone {
            TimeZone::get(name).map_err(|_| {
                QuietError::Invalid(format!("time_zone: {name:?} is not an IANA time zone"))
            })?;
        }
        Ok(())
    }

    /// When a message due at `due_ms` (Unix ms) may leave for `to`: `due_ms` outside the quiet
    /// hours, else the moment they end.
    pub fn release(&self, to: &str, due_ms: u64) -> Result<u64, QuietError> {
        let start = time_of(&self.start, "start")?;
        let end = time_of(&self.end, "end")?;
        let zone = self.zone(to)?;
        if start == end {
            return Ok(due_ms);
        }
        let due = Timestamp::from_millisecond(i64::try_from(due_ms).unwrap_or(i64::MAX))
            .map_err(|e| QuietError::Invalid(e.to_string()))?
            .to_zoned(zone);
        let now = due.time();
        let quiet = if start < end {
            now >= start && now < end
        } else {
            now >= start || now < end
        };
        if !quiet {
            return Ok(due_ms);
        }
        // The next `end` at or after `due`, local.
        let mut release: Zoned = due
            .with()
            .time(end)
            .build()
            .map_err(|e| QuietError::Invalid(e.to_string()))?;
        if release <= due {
            release = release
                .checked_add(1.day())
                .map_err(|e| QuietError::Invalid(e.to_string()))?;
        }
        Ok(u64::try_from(release.timestamp().as_millisecond()).unwrap_or(due_ms))
    }
}

/// The one time zone of the country of E.164 number `to`, when it has one (the tz database's
/// zone1970.tab, by calling code). `None` for countries with several zones, shared calling
/// codes (`+1`, `+7`), and numbers not known here.
pub fn zone_of_number(to: &str) -> Option<&'static str> {
    let digits = to.strip_prefix('+')?;
    (1..=3)
        .rev()
        .filter_map(|n| digits.get(..n))
        .find_map(|prefix| {
            ZONES
                .iter()
                .find(|(code, _)| *code == prefix)
                .map(|(_, zone)| *zone)
        })
        .flatten()
}

/// Calling code, and the country's one zone (`None`: several, or shared by several countries).
/// Codes not listed are not known to have one zone.
const ZONES: &[(&str, Option<&str>)] = &[
    ("1", None),
    ("7", None),
    ("20", Some("Africa/Cairo")),
    ("27", Some("Africa/Johannesburg")),
    ("30", Some("Europe/Athens")),
    ("31", Some("Europe/Amsterdam")),
    ("32", Some("Europe/Brussels")),
    ("33", Some("Europe/Paris")),
    ("34", None),
    ("36", Some("Europe/Budapest")),
    ("39", Some("Europe/Rome")),
    ("40", Some("Europe/Bucharest")),
    ("41", Some("Europe/Zurich")),
    ("43", Some("Europe/Vienna")),
    ("44", Some("Europe/London")),
    ("45", Some("Europe/Copenhagen")),
    ("46", Some("Europe/Stockholm")),
    ("47", Some("Europe/Oslo")),
    ("48", Some("Europe/Warsaw")),
    ("49", Some("Europe/Berlin")),
    ("51", Some("America/Lima")),
    ("52", None),
    ("54", None),
    ("55", None),
    ("56", None),
    ("57", Some("America/Bogota")),
    ("58", Some("America/Caracas")),
    ("60", None),
    ("61", None),
    ("62", None),
    ("63", Some("Asia/Manila")),
    ("64", None),
    ("65", Some("Asia/Singapore")),
    ("66", Some("Asia/Bangkok")),
    ("81", Some("Asia/Tokyo")),
    ("82", Some("Asia/Seoul")),
    ("84", Some("Asia/Ho_Chi_Minh")),
    ("86", None),
    ("90", Some("Europe/Istanbul")),
    ("91", Some("Asia/Kolkata")),
    ("92", Some("Asia/Karachi")),
    ("94", Some("Asia/Colombo")),
    ("212", Some("Africa/Casablanca")),
    ("233", Some("Africa/Accra")),
    ("234", Some("Africa/Lagos")),
    ("254", Some("Africa/Nairobi")),
    ("255", Some("Africa/Dar_es_Salaam")),
    ("256", Some("Africa/Kampala")),
    ("351", None),
    ("352", Some("Europe/Luxembourg")),
    ("353", Some("Europe/Dublin")),
    ("354", Some("Atlantic/Reykjavik")),
    ("356", Some("Europe/Malta")),
    ("357", None),
    ("358", Some("Europe/Helsinki")),
    ("359", Some("Europe/Sofia")),
    ("370", Some("Europe/Vilnius")),
    ("371", Some("Europe/Riga")),
    ("372", Some("Europe/Tallinn")),
    ("380", None),
    ("385", Some("Europe/Zagreb")),
    ("386", Some("Europe/Ljubljana")),
    ("420", Some("Europe/Prague")),
    ("421", Some("Europe/Bratislava")),
    ("593", None),
    ("852", Some("Asia/Hong_Kong")),
    ("853", Some("Asia/Macau")),
    ("880", Some("Asia/Dhaka")),
    ("886", Some("Asia/Taipei")),
    ("965", Some("Asia/Kuwait")),
    ("966", Some("Asia/Riyadh")),
    ("971", Some("Asia/Dubai")),
    ("972", Some("Asia/Jerusalem")),
    ("974", Some("Asia/Qatar")),
    ("977", Some("Asia/Kathmandu")),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> u64 {
        u64::try_from(rfc3339.parse::<Timestamp>().unwrap().as_millisecond()).unwrap()
    }

    fn quiet(zone: Option<&str>) -> QuietHours {
        QuietHours {
            start: "21:00".into(),
            end: "08:00".into(),
            time_zone: zone.map(str::to_owned),
        }
    }

    #[test]
    fn a_message_inside_quiet_hours_waits_until_they_end_in_the_recipients_zone() {
        let q = quiet(None);
        // 22:30 in Stockholm (UTC+1 in December): held to 08:00 the next morning.
        assert_eq!(
            q.release("+46701234567", ms("2026-12-03T21:30:00Z"))
                .unwrap(),
            ms("2026-12-04T07:00:00Z")
        );
        // 05:00 local: held to 08:00 the same day.
        assert_eq!(
            q.release("+46701234567", ms("2026-12-04T04:00:00Z"))
                .unwrap(),
            ms("2026-12-04T07:00:00Z")
        );
        // Midday: leaves as due.
        let noon = ms("2026-12-04T11:00:00Z");
        assert_eq!(q.release("+46701234567", noon).unwrap(), noon);
        // Summer time: 08:00 in Stockholm is 06:00 UTC.
        assert_eq!(
            q.release("+46701234567", ms("2026-07-01T20:00:00Z"))
                .unwrap(),
            ms("2026-07-02T06:00:00Z")
        );
    }

    #[test]
    fn the_zone_comes_from_the_number_only_when_its_country_has_one() {
        assert_eq!(zone_of_number("+46701234567"), Some("Europe/Stockholm"));
        assert_eq!(zone_of_number("+3531234567"), Some("Europe/Dublin"));
        assert_eq!(zone_of_number("+12025550123"), None);
        assert_eq!(zone_of_number("+79161234567"), None);
        assert_eq!(zone_of_number("+61412345678"), None);
        assert_eq!(zone_of_number("someone"), None);
        let q = quiet(None);
        assert_eq!(
            q.release("+12025550123", 0).unwrap_err().code(),
            TIME_ZONE_REQUIRED
        );
        // Given a zone, any recipient.
        let q = quiet(Some("America/New_York"));
        assert_eq!(
            q.release("+12025550123", ms("2026-12-04T03:00:00Z"))
                .unwrap(),
            ms("2026-12-04T13:00:00Z")
        );
    }

    #[test]
    fn bad_quiet_hours_are_refused_with_a_reason() {
        for (start, end, zone) in [
            ("9pm", "08:00", None),
            ("24:00", "08:00", None),
            ("21:00", "8:00", None),
            ("21:00", "08:00", Some("Mars/Olympus")),
        ] {
            let q = QuietHours {
                start: start.into(),
                end: end.into(),
                time_zone: zone.map(str::to_owned),
            };
            assert_eq!(
                q.check().unwrap_err().code(),
                INVALID_QUIET_HOURS,
                "{start} {end} {zone:?}"
            );
        }
        assert!(quiet(None).check().is_ok());
    }
}

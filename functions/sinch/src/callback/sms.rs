//! SMS API callbacks, told apart by their top-level `type`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::conversation::timestamp;
use crate::open_enum::open_enum;

open_enum! {
    /// A recipient's delivery status. `Delivered` and the failures are final.
    pub enum SmsStatus {
        Queued = "Queued",
        Dispatched = "Dispatched",
        Aborted = "Aborted",
        Cancelled = "Cancelled",
        Rejected = "Rejected",
        Deleted = "Deleted",
        Delivered = "Delivered",
        Failed = "Failed",
        Expired = "Expired",
        Unknown = "Unknown",
    }
}

/// Which product a delivery report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    Sms,
    Mms,
}

/// `delivery_report_sms` / `delivery_report_mms`: counts per status for a whole batch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct BatchDeliveryReport {
    pub batch_id: String,
    #[serde(default)]
    pub statuses: Vec<StatusCount>,
    #[serde(default)]
    pub total_message_count: Option<u64>,
    #[serde(default)]
    pub client_reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct StatusCount {
    pub code: i64,
    pub status: SmsStatus,
    #[serde(default)]
    pub count: u64,
    /// Present when the report type is `full`.
    #[serde(default)]
    pub recipients: Vec<String>,
}

/// `recipient_delivery_report_sms` / `recipient_delivery_report_mms`: one recipient's status.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct RecipientDeliveryReport {
    pub batch_id: String,
    pub recipient: String,
    pub code: i64,
    pub status: SmsStatus,
    #[serde(default, with = "timestamp::optional")]
    pub at: Option<OffsetDateTime>,
    #[serde(default, with = "timestamp::optional")]
    pub operator_status_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub client_reference: Option<String>,
    #[serde(default)]
    pub applied_originator: Option<String>,
    #[serde(default)]
    pub encoding: Option<String>,
    #[serde(default)]
    pub number_of_message_parts: Option<u32>,
    #[serde(default)]
    pub operator: Option<String>,
}

/// What every inbound (MO) message has. Numbers may come without a `+`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Inbound<Body> {
    pub id: String,
    pub from: String,
    pub to: String,
    pub body: Body,
    #[serde(default, with = "timestamp::optional")]
    pub received_at: Option<OffsetDateTime>,
    #[serde(default, with = "timestamp::optional")]
    pub sent_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub operator_id: Option<String>,
    #[serde(default)]
    pub client_reference: Option<String>,
    /// `mo_binary` only: the user data header, hex.
    #[serde(default)]
    pub udh: Option<String>,
}

/// `mo_media`'s body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct MediaBody {
    pub subject: Option<String>,
    pub message: Option<String>,
    pub media: Vec<MediaItem>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct MediaItem {
    pub url: String,
    pub content_type: Option<String>,
    pub status: Option<String>,
    pub code: Option<i64>,
}

/// An SMS API callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsCallback {
    BatchDeliveryReport {
        medium: Medium,
        report: BatchDeliveryReport,
    },
    RecipientDeliveryReport {
        medium: Medium,
        report: RecipientDeliveryReport,
    },
    /// `mo_text`: `body` is the text.
    MoText(Inbound<String>),
    /// `mo_binary`: `body` is base64, `udh` hex.
    MoBinary(Inbound<String>),
    /// `mo_media`: an MMS.
    MoMedia(Inbound<MediaBody>),
    /// A `type` this version does not know, with the type.
    Unknown { kind: String },
}

impl SmsCallback {
    /// Parses the whole body as the callback `kind` names.
    pub(crate) fn parse(kind: &str, body: &[u8]) -> serde_json::Result<SmsCallback> {
        use serde_json::from_slice as p;
        Ok(match kind {
            "delivery_report_sms" => SmsCallback::BatchDeliveryReport {
                medium: Medium::Sms,
                report: p(body)?,
            },
            "delivery_report_mms" => SmsCallback::BatchDeliveryReport {
                medium: Medium::Mms,
                report: p(body)?,
            },
            "recipient_delivery_report_sms" => SmsCallback::RecipientDeliveryReport {
                medium: Medium::Sms,
                report: p(body)?,
            },
            "recipient_delivery_report_mms" => SmsCallback::RecipientDeliveryReport {
                medium: Medium::Mms,
                report: p(body)?,
            },
            "mo_text" => SmsCallback::MoText(p(body)?),
            "mo_binary" => SmsCallback::MoBinary(p(body)?),
            "mo_media" => SmsCallback::MoMedia(p(body)?),
            other => SmsCallback::Unknown {
                kind: other.to_owned(),
            },
        })
    }

    /// The `type` it came with.
    pub fn kind(&self) -> &str {
        match self {
            SmsCallback::BatchDeliveryReport {
                medium: Medium::Sms,
                ..
            } => "delivery_report_sms",
            SmsCallback::BatchDeliveryReport {
                medium: Medium::Mms,
                ..
            } => "delivery_report_mms",
            SmsCallback::RecipientDeliveryReport {
                medium: Medium::Sms,
                ..
            } => "recipient_delivery_report_sms",
            SmsCallback::RecipientDeliveryReport {
                medium: Medium::Mms,
                ..
            } => "recipient_delivery_report_mms",
            SmsCallback::MoText(_) => "mo_text",
            SmsCallback::MoBinary(_) => "mo_binary",
            SmsCallback::MoMedia(_) => "mo_media",
            SmsCallback::Unknown { kind } => kind,
        }
    }
}

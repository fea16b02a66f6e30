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
    /// The SMS API's reports (`*_sms`).
    Sms,
    /// The MMS reports (`*_mms`).
    Mms,
}

/// `delivery_report_sms` / `delivery_report_mms`: counts per status for a whole batch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct BatchDeliveryReport {
    /// The batch reported on (the id the send answered).
    pub batch_id: String,
    /// How many messages of the batch are in each status.
    #[serde(default)]
    pub statuses: Vec<StatusCount>,
    /// How many messages the batch has.
    #[serde(default)]
    pub total_message_count: Option<u64>,
    /// The `client_reference` given when sending.
    #[serde(default)]
    pub client_reference: Option<String>,
}

/// How many messages of a batch are in one status.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct StatusCount {
    /// Sinch's numeric status code for the status (see the SMS API's delivery report codes).
    pub code: i64,
    /// The status.
    pub status: SmsStatus,
    /// How many messages are in it.
    #[serde(default)]
    pub count: u64,
    /// Present when the report type is `full`.
    #[serde(default)]
    pub recipients: Vec<String>,
}

/// `recipient_delivery_report_sms` / `recipient_delivery_report_mms`: one recipient's status.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct RecipientDeliveryReport {
    /// The batch the message belongs to.
    pub batch_id: String,
    /// The recipient's number (MSISDN, sometimes without `+`).
    pub recipient: String,
    /// Sinch's numeric status code.
    pub code: i64,
    /// The status.
    pub status: SmsStatus,
    /// When Sinch recorded the status.
    #[serde(default, with = "timestamp::optional")]
    pub at: Option<OffsetDateTime>,
    /// When the operator reported the status.
    #[serde(default, with = "timestamp::optional")]
    pub operator_status_at: Option<OffsetDateTime>,
    /// The `client_reference` given when sending.
    #[serde(default)]
    pub client_reference: Option<String>,
    /// The sender Sinch used, when it replaced ours.
    #[serde(default)]
    pub applied_originator: Option<String>,
    /// `GSM` or `UNICODE`.
    #[serde(default)]
    pub encoding: Option<String>,
    /// How many SMS parts the message took.
    #[serde(default)]
    pub number_of_message_parts: Option<u32>,
    /// The operator's MCC+MNC, when known.
    #[serde(default)]
    pub operator: Option<String>,
}

/// What every inbound (MO) message has. Numbers may come without a `+`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Inbound<Body> {
    /// Sinch's id of the inbound message.
    pub id: String,
    /// The sender's number.
    pub from: String,
    /// Our number or short code it was sent to.
    pub to: String,
    /// The content: text, base64 bytes or an MMS body, by type.
    pub body: Body,
    /// When Sinch received it.
    #[serde(default, with = "timestamp::optional")]
    pub received_at: Option<OffsetDateTime>,
    /// When the sender's phone sent it, if the operator tells.
    #[serde(default, with = "timestamp::optional")]
    pub sent_at: Option<OffsetDateTime>,
    /// The operator's MCC+MNC, when known.
    #[serde(default)]
    pub operator_id: Option<String>,
    /// The `client_reference` of the batch it answers, when Sinch can tell.
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
    /// The MMS subject.
    pub subject: Option<String>,
    /// The MMS text.
    pub message: Option<String>,
    /// The MMS attachments.
    pub media: Vec<MediaItem>,
}

/// One MMS attachment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct MediaItem {
    /// Where Sinch keeps it.
    pub url: String,
    /// Its MIME type.
    pub content_type: Option<String>,
    /// Whether Sinch could fetch it (`Uploaded`, `Failed`, ...).
    pub status: Option<String>,
    /// Sinch's code for that status.
    pub code: Option<i64>,
}

/// An SMS API callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsCallback {
    /// `delivery_report_sms` / `delivery_report_mms`.
    BatchDeliveryReport {
        /// SMS or MMS.
        medium: Medium,
        /// The report.
        report: BatchDeliveryReport,
    },
    /// `recipient_delivery_report_sms` / `recipient_delivery_report_mms`.
    RecipientDeliveryReport {
        /// SMS or MMS.
        medium: Medium,
        /// The report.
        report: RecipientDeliveryReport,
    },
    /// `mo_text`: `body` is the text.
    MoText(Inbound<String>),
    /// `mo_binary`: `body` is base64, `udh` hex.
    MoBinary(Inbound<String>),
    /// `mo_media`: an MMS.
    MoMedia(Inbound<MediaBody>),
    /// A `type` this version does not know, with the type.
    Unknown {
        /// The `type` as received.
        kind: String,
    },
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

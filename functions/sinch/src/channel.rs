//! The messaging channels, as Sinch names them, with what callers ask of them.
//!
//! | channel | identity | |
//! |---|---|---|
//! | `WHATSAPP`, `SMS`, `RCS`, `VIBER`, `VIBERBM`, `MMS`, `KAKAOTALK` | a phone number | [`Channel::is_phone`] |
//! | `MESSENGER`, `INSTAGRAM`, `TELEGRAM`, `KAKAOTALKCHAT`, `LINE`, `WECHAT`, `APPLEBC` | the channel's own id | |
//!
//! An open enum: a channel Sinch adds later is [`Channel::Other`], kept as received.

use crate::open_enum::open_enum;

open_enum! {
    /// A messaging channel of the Conversation API (`SMS` is also the SMS API's, for contacts).
    pub enum Channel {
        WhatsApp = "WHATSAPP",
        Sms = "SMS",
        Rcs = "RCS",
        Messenger = "MESSENGER",
        Viber = "VIBER",
        ViberBm = "VIBERBM",
        Mms = "MMS",
        Instagram = "INSTAGRAM",
        Telegram = "TELEGRAM",
        KakaoTalk = "KAKAOTALK",
        KakaoTalkChat = "KAKAOTALKCHAT",
        Line = "LINE",
        WeChat = "WECHAT",
        AppleBc = "APPLEBC",
    }
}

impl Channel {
    /// Whether its identities are phone numbers (E.164).
    pub fn is_phone(&self) -> bool {
        matches!(
            self,
            Channel::WhatsApp
                | Channel::Sms
                | Channel::Rcs
                | Channel::Viber
                | Channel::ViberBm
                | Channel::Mms
                | Channel::KakaoTalk
        )
    }

    /// Whether it reports `READ`: SMS and MMS (as the Conversation API sends them) end at
    /// `DELIVERED`, nothing follows it there.
    pub fn reports_read(&self) -> bool {
        !matches!(self, Channel::Sms | Channel::Mms)
    }

    /// Whether this version knows it (not [`Channel::Other`]).
    pub fn is_known(&self) -> bool {
        !matches!(self, Channel::Other(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_know_their_identities() {
        assert!(Channel::WhatsApp.is_phone() && Channel::Sms.is_phone());
        assert!(!Channel::Messenger.is_phone() && !Channel::from("HOLOGRAM").is_phone());
        assert!(!Channel::from("HOLOGRAM").is_known());
        assert_eq!(Channel::KNOWN.len(), 14);
        assert!(Channel::KNOWN.iter().all(|c| Channel::from(*c).is_known()));
    }
}

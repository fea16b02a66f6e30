//! Every fixture parses to the right kind; every trigger and SMS type is recognised; unknown
//! kinds, fields and enum values are values, not errors.

use sinch::Channel;
use sinch::callback::conversation::{DeliveryStatus, Event, ProcessingMode};
use sinch::callback::sms::{Medium, SmsCallback, SmsStatus};
use sinch::callback::{Callback, ParseError, parse};

fn fixture(path: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn conversation(callback: Callback) -> (sinch::callback::conversation::Envelope, Event) {
    match callback {
        Callback::Conversation(c) => (c.envelope, c.event),
        other => panic!("expected a Conversation callback, got {other:?}"),
    }
}

#[test]
fn every_fixture_parses_to_its_kind() {
    let cases = [
        (
            "conversation/contact_create.json",
            "conversation.contact_create_notification",
        ),
        (
            "conversation/message_delivery_failed.json",
            "conversation.message_delivery_report",
        ),
        (
            "conversation/message_inbound_text.json",
            "conversation.message",
        ),
        ("sms/mo_text.json", "sms.mo_text"),
        (
            "sms/recipient_delivery_report.json",
            "sms.recipient_delivery_report_sms",
        ),
        (
            "sinch-sdk/conversation_v1_sinchevents_capability_CapabilityEventDto.json",
            "conversation.capability_notification",
        ),
        (
            "sinch-sdk/conversation_v1_sinchevents_channel_ChannelEventDto.json",
            "conversation.channel_event_notification",
        ),
        (
            "sinch-sdk/conversation_v1_sinchevents_contact_ContactCreateEventDto.json",
            "conversation.contact_create_notification",
        ),
        (
            "sinch-sdk/conversation_v1_sinchevents_contact_ContactDeleteEventDto.json",
            "conversation.contact_delete_notification",
        ),
        (
            "sinch-sdk/conversation_v1_sinchevents_contact_ContactIdentitiesDuplicationEventDto.json",
            "conversation.duplicated_contact_identities_notification",
        ),
        (
            "sinch-sdk/conversation_v1_sinchevents_contact_ContactMergeEventDto.json",
            "conversation.contact_merge_notification",
        ),
        (
            "sinch-sdk/conversation_v1_sinchevents_contact_ContactUpdateEventDto.json",
            "conversation.contact_update_notification",
        ),
        (
            "sinch-sdk/conversation_v1_sinchevents_conversation_ConversationDeleteEventDto.json",
            "conversation.conversation_delete_notification",
        ),
        (
            "sinch-sdk/conversation_v1_sinchevents_conversation_ConversationStartEventDto.json",
            "conversation.conversation_start_notification",
        ),
        (
            "sinch-sdk/conversation_v1_sinchevents_conversation_ConversationStopEventDto.json",
            "conversation.conversation_stop_notification",
        ),
        (
            "sinch-sdk/conversation_v1_sinchevents_delivery_EventDeliveryReceiptEventDto.json",
            "conversation.event_delivery_report",
        ),
        (
            "sinch-sdk/conversation_v1_sinchevents_delivery_MessageDeliveryReceiptEventDto.json",
            "conversation.message_delivery_report",
        ),
        (
            "sinch-sdk/conversation_v1_sinchevents_inbound_InboundContactEventDto.json",
            "conversation.event",
        ),
        (
            "sinch-sdk/conversation_v1_sinchevents_inbound_InboundContactMessageEventDto.json",
            "conversation.event",
        ),
        (
            "sinch-sdk/conversation_v1_sinchevents_message_MessageInboundEventDto.json",
            "conversation.message",
        ),
        (
            "sinch-sdk/conversation_v1_sinchevents_message_MessageSubmitEventDto.json",
            "conversation.message_submit_notification",
        ),
        (
            "sinch-sdk/conversation_v1_sinchevents_opting_OptInEventDto.json",
            "conversation.opt_in_notification",
        ),
        (
            "sinch-sdk/conversation_v1_sinchevents_opting_OptOutEventDto.json",
            "conversation.opt_out_notification",
        ),
        (
            "sinch-sdk/conversation_v1_sinchevents_record_RecordNotificationEventDto.json",
            "conversation.record_notification",
        ),
        (
            "sinch-sdk/conversation_v1_sinchevents_smartconversations_MessageInboundSmartConversationRedactionEventDto.json",
            "conversation.message_redaction",
        ),
        (
            "sinch-sdk/conversation_v1_sinchevents_smartconversations_SmartConversationsEventDto.json",
            "conversation.smart_conversation_notification",
        ),
        (
            "sinch-sdk/conversation_v1_sinchevents_unsupported_UnsupportedCallbackEventDto.json",
            "conversation.unsupported_callback",
        ),
        (
            "sinch-sdk/sms_v1_deliveryreports_BatchDeliveryReportMMSDto.json",
            "sms.delivery_report_mms",
        ),
        (
            "sinch-sdk/sms_v1_deliveryreports_BatchDeliveryReportSMSDto.json",
            "sms.delivery_report_sms",
        ),
        (
            "sinch-sdk/sms_v1_deliveryreports_RecipientDeliveryReportMMSDto.json",
            "sms.recipient_delivery_report_mms",
        ),
        (
            "sinch-sdk/sms_v1_deliveryreports_RecipientDeliveryReportSMSDto.json",
            "sms.recipient_delivery_report_sms",
        ),
        (
            "sinch-sdk/sms_v1_inbounds_InboundBinaryDto.json",
            "sms.mo_binary",
        ),
        (
            "sinch-sdk/sms_v1_inbounds_InboundMediaDto.json",
            "sms.mo_media",
        ),
        (
            "sinch-sdk/sms_v1_inbounds_InboundTextDto.json",
            "sms.mo_text",
        ),
    ];
    for (path, kind) in cases {
        let callback = parse(&fixture(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(callback.kind(), kind, "{path}");
        assert!(callback.is_known());
    }
    // Every fixture file is covered above.
    let mut count = 0;
    for dir in ["conversation", "sms", "sinch-sdk"] {
        let path = format!("{}/fixtures/{dir}", env!("CARGO_MANIFEST_DIR"));
        count += std::fs::read_dir(path)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "json")
            })
            .count();
    }
    assert_eq!(count, cases.len());
}

#[test]
fn an_inbound_text_message_has_its_fields() {
    let (envelope, event) =
        conversation(parse(&fixture("conversation/message_inbound_text.json")).unwrap());
    assert_eq!(envelope.app_id, "01EB37HMH1M6SV18ABNS3G135H");
    assert_eq!(envelope.accepted_time.unwrap().nanosecond(), 993_024_000);
    let Event::MessageInbound(message) = event else {
        panic!("{event:?}")
    };
    assert_eq!(message.id, "01EQ8235TD19N21XQTH12B145D");
    assert_eq!(message.contact_message.text(), Some("Hi!"));
    assert_eq!(message.contact_message.kind(), "text_message");
    let identity = message.channel_identity.unwrap();
    assert_eq!(identity.channel, Channel::Messenger);
    assert_eq!(identity.identity, "2742085512340733");
    assert_eq!(message.contact_id, "01EQ4174TGGY5B1VPTPGHW19R0");
}

#[test]
fn dispatch_mode_and_reply_to_are_read() {
    let (_, event) = conversation(
        parse(&fixture(
            "sinch-sdk/conversation_v1_sinchevents_message_MessageInboundEventDto.json",
        ))
        .unwrap(),
    );
    let Event::MessageInbound(message) = event else {
        panic!()
    };
    assert_eq!(message.processing_mode, Some(ProcessingMode::Dispatch));
    assert_eq!(
        message.contact_message.reply_to.unwrap().message_id,
        "message id value"
    );
    assert_eq!(message.injected, Some(true));
}

#[test]
fn a_failed_delivery_report_has_its_reason() {
    let (envelope, event) =
        conversation(parse(&fixture("conversation/message_delivery_failed.json")).unwrap());
    assert!(envelope.event_time.is_some());
    let Event::MessageDelivery(report) = event else {
        panic!()
    };
    assert_eq!(report.status, DeliveryStatus::Failed);
    assert_eq!(report.message_id, "01EQBF0BT63J7S1FEKJZ0Z08VD");
    let reason = report.reason.unwrap();
    assert_eq!(reason.code, "OUTSIDE_ALLOWED_SENDING_WINDOW");
    assert_eq!(report.channel_identity.unwrap().channel, Channel::WhatsApp);
}

#[test]
fn sms_callbacks_have_their_fields() {
    let Callback::Sms(SmsCallback::MoText(mo)) = parse(&fixture("sms/mo_text.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (mo.from.as_str(), mo.to.as_str(), mo.body.as_str()),
        ("46701234567", "46700000001", "HELP")
    );
    assert_eq!(mo.received_at.unwrap().millisecond(), 120);

    let Callback::Sms(SmsCallback::RecipientDeliveryReport { medium, report }) =
        parse(&fixture("sms/recipient_delivery_report.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(medium, Medium::Sms);
    assert_eq!(report.status, SmsStatus::Delivered);
    assert_eq!(report.code, 0);
    assert_eq!(report.client_reference.as_deref(), Some("order-1234"));

    let Callback::Sms(SmsCallback::BatchDeliveryReport { medium, report }) = parse(&fixture(
        "sinch-sdk/sms_v1_deliveryreports_BatchDeliveryReportMMSDto.json",
    ))
    .unwrap() else {
        panic!()
    };
    assert_eq!(medium, Medium::Mms);
    assert_eq!(report.statuses[0].recipients, ["44231235674"]);

    let Callback::Sms(SmsCallback::MoMedia(mms)) =
        parse(&fixture("sinch-sdk/sms_v1_inbounds_InboundMediaDto.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(mms.body.media[0].url, "https://foo.url");

    let Callback::Sms(SmsCallback::MoBinary(binary)) =
        parse(&fixture("sinch-sdk/sms_v1_inbounds_InboundBinaryDto.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(binary.udh.as_deref(), Some("foo udh"));
}

#[test]
fn unknown_triggers_and_types_are_values() {
    let (envelope, event) = conversation(
        parse(
            br#"{"app_id":"a","project_id":"p","comment_event":{"id":"c1"},"message_metadata":""}"#,
        )
        .unwrap(),
    );
    assert_eq!(envelope.app_id, "a");
    assert_eq!(
        event,
        Event::Unknown {
            key: "comment_event".into()
        }
    );

    let callback = parse(br#"{"type":"mo_hologram","id":"x"}"#).unwrap();
    assert_eq!(
        callback,
        Callback::Sms(SmsCallback::Unknown {
            kind: "mo_hologram".into()
        })
    );
    assert_eq!(callback.kind(), "unknown");
    assert!(!callback.is_known());

    let callback = parse(br#"{"hello":"world"}"#).unwrap();
    assert_eq!(
        callback,
        Callback::Unknown {
            keys: vec!["hello".into()]
        }
    );
    assert_eq!(callback.kind(), "unknown");
}

#[test]
fn unknown_fields_and_enum_values_are_tolerated() {
    let body = br#"{"app_id":"a","future_field":[1,2],"message_delivery_report":{"message_id":"m","status":"TELEPORTED","channel_identity":{"channel":"CARRIER_PIGEON","identity":"1","x":1},"reason":{"code":"NEW_CODE","extra":true}}}"#;
    let (_, event) = conversation(parse(body).unwrap());
    let Event::MessageDelivery(report) = event else {
        panic!()
    };
    assert_eq!(report.status, DeliveryStatus::Other("TELEPORTED".into()));
    assert_eq!(report.status.as_str(), "TELEPORTED");
    assert_eq!(
        report.channel_identity.unwrap().channel,
        Channel::Other("CARRIER_PIGEON".into())
    );
    assert_eq!(report.reason.unwrap().code, "NEW_CODE");

    let sms = parse(br#"{"type":"recipient_delivery_report_sms","batch_id":"b","recipient":"1","code":999,"status":"Vanished","at":"2026-03-02T10:15:35.123456789Z","new":{}}"#).unwrap();
    let Callback::Sms(SmsCallback::RecipientDeliveryReport { report, .. }) = sms else {
        panic!()
    };
    assert_eq!(report.status, SmsStatus::Other("Vanished".into()));
    assert_eq!(report.at.unwrap().nanosecond(), 123_456_789);
}

#[test]
fn timestamps_with_nanoseconds_and_offsets_parse() {
    let body = br#"{"app_id":"a","accepted_time":"2021-10-18T17:49:13.813615123Z","event_time":"2021-10-18T19:49:13+02:00","message":{"id":"m","accept_time":"2021-10-18T17:49:13.1Z"}}"#;
    let (envelope, _) = conversation(parse(body).unwrap());
    assert_eq!(envelope.accepted_time.unwrap().nanosecond(), 813_615_123);
    assert_eq!(envelope.event_time.unwrap().unix_timestamp(), 1_634_579_353);
}

#[test]
fn bodies_that_are_not_callbacks_are_errors() {
    for body in [
        &b"not json"[..],
        b"",
        b"[1,2]",
        b"\"text\"",
        b"{\"a\":1",
        b"\xff\xfe",
    ] {
        assert!(
            matches!(parse(body), Err(ParseError::NotAnObject(_))),
            "{body:?}"
        );
    }
    // A known kind without its required fields, or with them mistyped.
    let cases: [(&[u8], &str); 5] = [
        (
            br#"{"app_id":"a","message_delivery_report":{"status":"DELIVERED"}}"#,
            "conversation.message_delivery_report",
        ),
        (
            br#"{"app_id":"a","message":{"contact_message":{}}}"#,
            "conversation.message",
        ),
        (br#"{"type":"mo_text","id":"x","from":"1"}"#, "sms.mo_text"),
        (br#"{"type":42}"#, "sms"),
        (
            br#"{"app_id":"a","accepted_time":"yesterday","message":{"id":"m"}}"#,
            "conversation envelope field accepted_time",
        ),
    ];
    for (body, kind) in cases {
        match parse(body) {
            Err(ParseError::Malformed { kind: got, .. }) => assert_eq!(got, kind),
            other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
        }
    }
    // Two trigger keys: refused as ambiguous, never the first silently winning.
    match parse(
        br#"{"app_id":"a","message":{"id":"m"},"message_delivery_report":{"message_id":"m","status":"READ"}}"#,
    ) {
        Err(error @ ParseError::Ambiguous { .. }) => {
            assert_eq!(error.reason(), "ambiguous");
            assert!(
                error.to_string().contains("message, message_delivery_report"),
                "{error}"
            );
        }
        other => panic!("{other:?}"),
    }
}

//! `/optouts`: set, read, lift and page through opt-outs, on both stores; every refusal; an
//! opt-out set here refuses a send as a STOP does.

use base64::Engine;
use lambda_http::http::Request as HttpRequest;
use lambda_http::{Body, Request};
use pipeline::queue::MemoryQueue;
use pipeline::store::Store;
use serde_json::Value;
use testkit::faulty::{Fault, FaultyStore};

use crate::common::{api, call, get, post};

fn request(method: &str, path: &str, body: &str) -> Request {
    HttpRequest::builder()
        .method(method)
        .uri(format!("https://api.example.com{path}"))
        .body(if body.is_empty() {
            Body::Empty
        } else {
            Body::Text(body.to_owned())
        })
        .unwrap()
}

fn sms_to(number: &str) -> String {
    serde_json::json!({"to": number, "channel": "SMS_API", "text": "Your code is 1234"}).to_string()
}

async fn an_opt_out_set_here_refuses_sends_until_it_is_lifted<S: Store + Clone>(store: S) {
    let api = api(store);
    let path = "/optouts/SMS/%2B46701234567";
    assert_eq!(call(&api, get(path)).await.0, 404);
    let (status, body, _) = call(&api, request("PUT", path, "")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], true);
    assert_eq!(body["opted_out"], true);
    assert_eq!(body["by"], "api");
    assert_eq!(body["identity"], "46701234567");
    assert!(body["reference"].as_str().unwrap().starts_with("api_"));
    assert_eq!(body["opted_out_at"], "2025-12-01T08:00:00Z");
    let (status, read, _) = call(&api, get("/optouts/SMS/46701234567")).await;
    assert_eq!((status, &read["reference"]), (200, &body["reference"]));
    // The SMS API and Conversation SMS share the opt-out.
    let (status, answer, _) = call(&api, post(Some("k1"), &sms_to("+46701234567"))).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("recipient_opted_out"))
    );
    // Again (as an import): the first opt-out stands.
    let (status, again, _) = call(&api, request("PUT", path, r#"{"by": "import"}"#)).await;
    assert_eq!((status, &again["changed"]), (200, &Value::Bool(false)));
    assert_eq!(
        (&again["by"], &again["reference"]),
        (&body["by"], &body["reference"])
    );
    let (status, lifted, _) =
        call(&api, request("DELETE", "/optouts/SMS_API/46701234567", "")).await;
    assert_eq!(status, 200, "{lifted}");
    assert_eq!(
        (&lifted["opted_out"], &lifted["changed"]),
        (&Value::Bool(false), &Value::Bool(true))
    );
    assert_eq!(call(&api, get(path)).await.0, 404);
    assert_eq!(
        call(&api, post(Some("k2"), &sms_to("+46701234567")))
            .await
            .0,
        202
    );
    let (status, again, _) = call(&api, request("DELETE", path, "")).await;
    assert_eq!((status, &again["changed"]), (200, &Value::Bool(false)));
    // An import says so.
    let (status, imported, _) = call(
        &api,
        request("PUT", "/optouts/WHATSAPP/46709990000", r#"{"by":"import"}"#),
    )
    .await;
    assert_eq!((status, imported["by"].as_str()), (200, Some("import")));
    assert!(
        imported["reference"]
            .as_str()
            .unwrap()
            .starts_with("import_")
    );
}

async fn opt_outs_are_listed_in_pages<S: Store + Clone>(store: S) {
    let api = api(store);
    let mut expected = Vec::new();
    for (channel, number) in [
        ("WHATSAPP", "46701000001"),
        ("SMS", "46701000003"),
        ("SMS", "46701000002"),
        ("RCS", "46701000004"),
        ("MESSENGER", "psid-77"),
    ] {
        let path = format!("/optouts/{channel}/{number}");
        assert_eq!(call(&api, request("PUT", &path, "")).await.0, 200);
        expected.push(format!("{channel}/{number}"));
    }
    expected.sort();
    let mut seen = Vec::new();
    let mut path = "/optouts?limit=2".to_owned();
    loop {
        let (status, page, _) = call(&api, get(&path)).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        for item in items {
            seen.push(format!(
                "{}/{}",
                item["channel"].as_str().unwrap(),
                item["identity"].as_str().unwrap()
            ));
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/optouts?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    let (status, sms, _) = call(&api, get("/optouts?channel=SMS_API")).await;
    assert_eq!(status, 200);
    let sms: Vec<&str> = sms["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["identity"].as_str().unwrap())
        .collect();
    assert_eq!(sms, ["46701000002", "46701000003"]);
}

async fn every_bad_opt_out_request_is_refused_with_its_code<S: Store + Clone>(store: S) {
    let api = api(store);
    let long = "x".repeat(257);
    let big = format!(r#"{{"by": "api", "pad": "{}"}}"#, "y".repeat(1100));
    let cases: Vec<(Request, u16, &str)> = vec![
        (get("/optouts/FAX/46701234567"), 400, "invalid_channel"),
        (get("/optouts/SMS/abc"), 400, "invalid_identity"),
        (get("/optouts/SMS/%2B0701234567"), 400, "invalid_identity"),
        (get("/optouts/WHATSAPP/123"), 400, "invalid_identity"),
        (get("/optouts/SMS/%FF%FE"), 400, "invalid_identity"),
        (
            get(&format!("/optouts/MESSENGER/{long}")),
            400,
            "invalid_identity",
        ),
        (
            request("PUT", "/optouts/SMS/46701234567", r#"{"by": "sinch"}"#),
            400,
            "invalid_body",
        ),
        (
            request("PUT", "/optouts/SMS/46701234567", r#"{"reason": "x"}"#),
            400,
            "invalid_body",
        ),
        (
            request("PUT", "/optouts/SMS/46701234567", "["),
            400,
            "invalid_body",
        ),
        (
            request("PUT", "/optouts/SMS/46701234567", &big),
            400,
            "invalid_body",
        ),
        (get("/optouts?limit=0"), 400, "invalid_limit"),
        (get("/optouts?limit=1001"), 400, "invalid_limit"),
        (get("/optouts?limit=ten"), 400, "invalid_limit"),
        (get("/optouts?cursor=%25%25"), 400, "invalid_cursor"),
        (get("/optouts?cursor=anVuaw"), 400, "invalid_cursor"),
        // A cursor no page gives: an identity longer than any (found by review: DynamoDB
        // refuses a sort key over 1,024 bytes).
        (
            get(&format!(
                "/optouts?cursor={}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(format!("RCS/{}", "x".repeat(300)))
            )),
            400,
            "invalid_cursor",
        ),
        (get("/optouts?channel=PIGEON"), 400, "invalid_channel"),
        (
            request("POST", "/optouts/SMS/46701234567", ""),
            405,
            "method_not_allowed",
        ),
        (request("DELETE", "/optouts", ""), 405, "method_not_allowed"),
        (get("/optouts/SMS"), 404, "not_found"),
        (get("/optouts/SMS/4670/1234567"), 404, "not_found"),
        (get("/optoutsX"), 404, "not_found"),
    ];
    for (request, status, code) in cases {
        let uri = request.uri().to_string();
        let method = request.method().to_string();
        let (got, body, _) = call(&api, request).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {uri}: {body}"
        );
    }
    // Nothing was written by any of them.
    let (_, list, _) = call(&api, get("/optouts")).await;
    assert_eq!(list["items"], serde_json::json!([]));
}

async fn an_unavailable_store_is_503_and_says_nothing_of_it<S: Store + Clone>(store: S) {
    let faulty = FaultyStore::new(store);
    let api: api::Api<FaultyStore<S>, MemoryQueue> = api(faulty.clone());
    for (operation, request) in [
        (
            "set_opt_out",
            request("PUT", "/optouts/SMS/46701234567", ""),
        ),
        (
            "set_opt_out",
            request("DELETE", "/optouts/SMS/46701234567", ""),
        ),
        ("contact", get("/optouts/SMS/46701234567")),
        ("opt_outs", get("/optouts")),
    ] {
        faulty.fail(operation, Fault::Before);
        let (status, body, _) = call(&api, request).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("unavailable")),
            "{operation}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(!message.contains("deliberate"), "{message}");
        faulty.heal();
    }
}

testkit::for_both_stores!(
    an_opt_out_set_here_refuses_sends_until_it_is_lifted,
    opt_outs_are_listed_in_pages,
    every_bad_opt_out_request_is_refused_with_its_code,
    an_unavailable_store_is_503_and_says_nothing_of_it,
);

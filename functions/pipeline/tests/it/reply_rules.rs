//! Reply rules read from an SSM parameter on moto_server: a change of the parameter is in force
//! once the cache time has passed, with no restart; a missing parameter is the fallback.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use pipeline::hook::Action;
use pipeline::reply::ReplyPolicy;
use pipeline::reply_rules::{DEFAULT_CACHE, ReplyRules, SsmParameter};
use testkit::Moto;

/// `PutParameter` (overwriting), spoken as the SSM JSON protocol, signed.
async fn put(sdk: &aws_config::SdkConfig, endpoint: &str, name: &str, kind: &str, value: &str) {
    let body = serde_json::json!({"Name": name, "Value": value, "Type": kind, "Overwrite": true})
        .to_string();
    let mut headers = vec![
        (
            "content-type".to_owned(),
            "application/x-amz-json-1.1".to_owned(),
        ),
        (
            "x-amz-target".to_owned(),
            "AmazonSSM.PutParameter".to_owned(),
        ),
    ];
    let credentials = sdk
        .credentials_provider()
        .unwrap()
        .provide_credentials()
        .await
        .unwrap();
    let url = format!("{endpoint}/");
    let signed = pipeline::aws::sigv4_headers(
        &credentials.into(),
        "us-east-1",
        "ssm",
        "POST",
        &url,
        &headers,
        body.as_bytes(),
    )
    .unwrap();
    headers.extend(signed);
    let mut request = reqwest::Client::new().post(&url).body(body);
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    let answer = request.send().await.unwrap();
    assert!(
        answer.status().is_success(),
        "{}",
        answer.text().await.unwrap()
    );
}

fn at(secs: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(secs)
}

#[tokio::test]
async fn rules_are_read_from_ssm_and_a_change_is_picked_up_within_the_cache_time() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let name = "/sinch-hooks/reply-rules";
    put(
        &sdk,
        moto.endpoint(),
        name,
        "String",
        r#"{"rules":[{"keywords":["ALTO"],"action":"opt_out","reply":"Dado de baja."}]}"#,
    )
    .await;
    let rules = ReplyRules::new(
        SsmParameter::new(&sdk, name).expect("a region and credentials"),
        ReplyPolicy::default(),
        DEFAULT_CACHE,
    );
    let decide = |policy: std::sync::Arc<ReplyPolicy>, text: &str| policy.decide(Some(text), false);
    let first = decide(rules.policy_at(at(0)).await, "Alto");
    assert_eq!(first.action, Action::OptOut);
    assert_eq!(first.reply.as_deref(), Some("Dado de baja."));

    // Changed (a SecureString now): the old rules hold until the cache time has passed.
    put(
        &sdk,
        moto.endpoint(),
        name,
        "SecureString",
        r#"{"rules":[{"keywords":["ARRÊT"],"action":"opt_out"}],"default_reply":"Merci."}"#,
    )
    .await;
    assert_eq!(
        decide(rules.policy_at(at(10)).await, "alto").action,
        Action::OptOut
    );
    let changed = rules.policy_at(at(31)).await;
    assert_eq!(decide(changed.clone(), "alto").action, Action::None);
    assert_eq!(decide(changed.clone(), "arret").action, Action::OptOut);
    assert_eq!(decide(changed, "bonjour").reply.as_deref(), Some("Merci."));

    // Made invalid: the last good rules stay.
    put(&sdk, moto.endpoint(), name, "String", "{not json").await;
    assert_eq!(
        decide(rules.policy_at(at(62)).await, "arrêt").action,
        Action::OptOut
    );

    // A parameter that does not exist: the fallback rules.
    let missing = ReplyRules::new(
        SsmParameter::new(&sdk, "/sinch-hooks/none").unwrap(),
        ReplyPolicy::default(),
        DEFAULT_CACHE,
    );
    assert_eq!(
        decide(missing.policy_at(at(0)).await, "STOP").action,
        Action::OptOut
    );
}

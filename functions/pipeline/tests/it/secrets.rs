//! Secrets Manager on moto_server: `*_ARN` settings are fetched and stand in for the secret.

use std::collections::HashMap;

use pipeline::config::Env;
use pipeline::secrets::{fetch, wanted};
use testkit::Moto;

fn env(pairs: Vec<(&'static str, String)>) -> Env<impl Fn(&str) -> Option<String>> {
    let map: HashMap<&str, String> = pairs.into_iter().collect();
    Env::from_lookup(move |name| map.get(name).cloned())
}

#[tokio::test]
async fn secrets_named_by_arn_are_fetched() {
    let moto = Moto::start();
    let client = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
    let create = |name: &'static str, value: &'static str| {
        let client = client.clone();
        async move {
            client
                .create_secret()
                .name(name)
                .secret_string(value)
                .send()
                .await
                .unwrap()
                .arn
                .unwrap()
        }
    };
    let webhook = create("sinch-hooks/webhook", "new-secret,old-secret").await;
    let key = create("sinch-hooks/key", "key-secret-value").await;

    let settings = env(vec![
        ("SINCH_WEBHOOK_SECRET_ARN", webhook.clone()),
        ("SINCH_KEY_SECRET_ARN", key),
        ("SINCH_SMS_API_TOKEN_ARN", "  ".into()),
    ]);
    assert!(wanted(&settings));
    let values = fetch(&settings, &client).await.unwrap();
    assert_eq!(values["SINCH_WEBHOOK_SECRET"], "new-secret,old-secret");
    assert_eq!(values["SINCH_KEY_SECRET"], "key-secret-value");
    assert!(
        !values.contains_key("SINCH_SMS_API_TOKEN"),
        "a blank ARN is unset"
    );

    // Both the secret and its ARN: ambiguous, refused.
    let both = env(vec![
        ("SINCH_WEBHOOK_SECRET_ARN", webhook),
        ("SINCH_WEBHOOK_SECRET", "plain".into()),
    ]);
    let error = fetch(&both, &client).await.unwrap_err();
    assert_eq!(error.name, "SINCH_WEBHOOK_SECRET_ARN");
    assert!(error.to_string().contains("both set"), "{error}");

    // A secret that does not exist stops start-up, naming the setting, never a value.
    let missing = env(vec![(
        "SINCH_SMS_API_TOKEN_ARN",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf".into(),
    )]);
    let error = fetch(&missing, &client).await.unwrap_err();
    assert_eq!(error.name, "SINCH_SMS_API_TOKEN_ARN");
    assert!(
        error
            .to_string()
            .starts_with("SINCH_SMS_API_TOKEN_ARN could not be read"),
        "{error}"
    );
    assert!(!error.to_string().contains('\n'));
}

#[tokio::test]
async fn without_arns_nothing_is_fetched() {
    let settings = env(vec![("SINCH_WEBHOOK_SECRET", "plain".into())]);
    assert!(!wanted(&settings));
    // A client pointing nowhere proves no call is made.
    let sdk = testkit::sdk_config_for(&testkit::refused_endpoint()).await;
    let values = fetch(&settings, &aws_sdk_secretsmanager::Client::new(&sdk))
        .await
        .unwrap();
    assert!(values.is_empty());
}

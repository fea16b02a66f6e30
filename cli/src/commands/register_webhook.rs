//! `sinch-hooks register-webhook`: points the Sinch app at the deployed URL. Creates the
//! Conversation API webhook, or updates the app's webhook with the same target (so running it
//! again is harmless); `--list` shows the app's webhooks.
//!
//! Sinch credentials come from the Lambdas' variables: `SINCH_PROJECT_ID`, `SINCH_KEY_ID`,
//! `SINCH_KEY_SECRET` (or `SINCH_KEY_SECRET_ARN`), `SINCH_APP_ID`, `SINCH_REGION`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use pipeline::config::Env;
use pipeline::sinch_config::{SINCH_APP_ID, sinch_client_config};
use sinch::client::{SinchClient, WebhookRequest};
use tokio::time::Instant;

use crate::CliError;
use crate::cli::RegisterWebhookArgs;

/// The triggers the pipeline handles, and the ones it logs.
pub const DEFAULT_TRIGGERS: [&str; 4] = [
    "MESSAGE_INBOUND",
    "MESSAGE_DELIVERY",
    "EVENT_DELIVERY",
    "CONTACT_CREATE",
];

/// Runs `register-webhook`.
pub fn run(args: &RegisterWebhookArgs, stdout: &mut dyn Write) -> Result<ExitCode, CliError> {
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Write)?;
    runtime.block_on(register(args, stdout))
}

async fn register(
    args: &RegisterWebhookArgs,
    stdout: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let config_error =
        |e: pipeline::config::ConfigError| CliError::Usage(format!("configuration: {e}"));
    let sdk = aws_config::load_from_env().await;
    let env = pipeline::secrets::environment(&sdk)
        .await
        .map_err(config_error)?;
    let config = sinch_client_config(&env).map_err(config_error)?;
    if config.conversation.is_none() {
        return Err(CliError::Usage(
            "configuration: set SINCH_PROJECT_ID, SINCH_KEY_ID and SINCH_KEY_SECRET (or SINCH_KEY_SECRET_ARN)".into(),
        ));
    }
    let app_id = env
        .optional(SINCH_APP_ID)
        .ok_or_else(|| CliError::Usage("configuration: SINCH_APP_ID is not set".into()))?;
    let client = SinchClient::new(config).map_err(|e| CliError::Usage(e.to_string()))?;
    let deadline = || Instant::now() + Duration::from_secs(30);
    let sinch_error = |e: sinch::client::SinchError| CliError::Usage(format!("Sinch: {e}"));

    let existing = client
        .list_webhooks(&app_id, deadline())
        .await
        .map_err(sinch_error)?;
    if args.list {
        for webhook in &existing {
            writeln!(
                stdout,
                "{}  {}  {}",
                webhook.id,
                webhook.target,
                webhook.triggers.join(",")
            )?;
        }
        if existing.is_empty() {
            writeln!(stdout, "app {app_id} has no webhooks")?;
        }
        return Ok(ExitCode::SUCCESS);
    }

    let url = args
        .url
        .clone()
        .ok_or_else(|| CliError::Usage("--url is required (or --list)".into()))?;
    let secret = match (&args.secret, &args.secret_arn) {
        (Some(secret), None) => secret.clone(),
        (None, Some(arn)) => secret_from_arn(&sdk, arn).await?,
        _ => {
            return Err(CliError::Usage(
                "give exactly one of --secret and --secret-arn".into(),
            ));
        }
    };
    // During a rotation the setting holds "new,old": Sinch signs with the new one.
    let secret = secret
        .split(',')
        .map(str::trim)
        .find(|s| !s.is_empty())
        .ok_or_else(|| CliError::Usage("the webhook secret is empty".into()))?
        .to_owned();
    let triggers: Vec<String> = if args.triggers.is_empty() {
        DEFAULT_TRIGGERS.iter().map(|t| t.to_string()).collect()
    } else {
        args.triggers
            .iter()
            .map(|t| t.trim().to_uppercase())
            .collect()
    };
    let request = WebhookRequest {
        app_id: app_id.clone(),
        target: url.clone(),
        target_type: "HTTP".into(),
        triggers,
        secret,
    };
    match existing.iter().find(|w| w.target == url) {
        Some(webhook) => {
            let updated = client
                .update_webhook(&webhook.id, &request, deadline())
                .await
                .map_err(sinch_error)?;
            writeln!(
                stdout,
                "updated webhook {} -> {} ({})",
                updated.id,
                updated.target,
                updated.triggers.join(",")
            )?;
        }
        None => {
            let created = client
                .create_webhook(&request, deadline())
                .await
                .map_err(sinch_error)?;
            writeln!(
                stdout,
                "created webhook {} -> {} ({})",
                created.id,
                created.target,
                created.triggers.join(",")
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn secret_from_arn(sdk: &aws_config::SdkConfig, arn: &str) -> Result<String, CliError> {
    let env = Env::from_lookup(|name| (name == "SINCH_WEBHOOK_SECRET_ARN").then(|| arn.to_owned()));
    let mut secrets = pipeline::secrets::fetch(&env, &aws_sdk_secretsmanager::Client::new(sdk))
        .await
        .map_err(|e| CliError::Usage(format!("--secret-arn: {e}")))?;
    secrets
        .remove("SINCH_WEBHOOK_SECRET")
        .ok_or_else(|| CliError::Usage("--secret-arn: no secret".into()))
}

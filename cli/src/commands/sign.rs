//! `sinch-hooks sign`: sign a body as Sinch would, for tests, demos and load generators.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::SystemTime;

use sinch::signature::{sign_headers, unix_seconds};

use crate::cli::SignArgs;
use crate::{CliError, body};

/// Runs `sign`: the headers, or a curl command.
pub fn run(
    args: &SignArgs,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let secret = args.secret.first()?;
    let body = body::read(args.body_file.as_deref(), stdin)?;
    let nonce = args
        .nonce
        .clone()
        .unwrap_or_else(|| ulid::Ulid::generate().to_string());
    let timestamp = args
        .timestamp
        .unwrap_or_else(|| unix_seconds(SystemTime::now()));
    let signed = sign_headers(secret, &body, &nonce, timestamp);

    let Some(url) = &args.url else {
        for (name, value) in signed.pairs() {
            writeln!(stdout, "{name}: {value}")?;
        }
        return Ok(ExitCode::SUCCESS);
    };

    let quote = |text: &str| {
        shlex::try_quote(text)
            .map(|q| q.into_owned())
            .map_err(|e| CliError::Usage(format!("cannot quote {text:?} for a shell: {e}")))
    };
    let data = match &args.body_file {
        // Posting the file itself keeps its bytes exact, whatever they are.
        Some(path) if path.as_os_str() != "-" => quote(&format!("@{}", path.display()))?,
        _ => {
            let text = std::str::from_utf8(&body).map_err(|_| {
                CliError::Usage(
                    "the body is not UTF-8 text; pass it as a file to get a curl command".into(),
                )
            })?;
            quote(text)?
        }
    };
    let mut command = format!(
        "curl -sS -X POST {} -H {}",
        quote(url)?,
        quote("content-type: application/json")?
    );
    for (name, value) in signed.pairs() {
        command.push_str(" -H ");
        command.push_str(&quote(&format!("{name}: {value}"))?);
    }
    command.push_str(" --data-binary ");
    command.push_str(&data);
    writeln!(stdout, "{command}")?;
    Ok(ExitCode::SUCCESS)
}

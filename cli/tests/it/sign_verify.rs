//! `sinch-hooks sign` and `sinch-hooks verify`, run as processes.

use assert_cmd::Command;
use std::borrow::BorrowMut;
use std::path::PathBuf;

const SECRET: &str = "foo_secret1234";
const NONCE: &str = "01FJA8B4A7BM43YGWSG9GBV067";
const TIMESTAMP: &str = "1634579353";
const SIGNATURE: &str = "6bpJoRmFoXVjfJIVglMoJzYXxnoxRujzR4k2GOXewOE=";

fn vector_body() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../functions/sinch/fixtures/conversation/contact_create.json")
}

fn cli() -> Command {
    let mut command = Command::cargo_bin("sinch-hooks").expect("the binary is built");
    command.env_remove("SINCH_WEBHOOK_SECRET");
    command
}

fn verify(extra: &[&str]) -> Command {
    let mut command = cli();
    command.args([
        "verify",
        "--nonce",
        NONCE,
        "--timestamp",
        TIMESTAMP,
        "--signature",
        SIGNATURE,
    ]);
    command.args(extra);
    command
}

fn stdout(mut command: impl BorrowMut<Command>) -> (i32, String, String) {
    let output = command.borrow_mut().output().expect("runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).expect("utf-8 stdout"),
        String::from_utf8(output.stderr).expect("utf-8 stderr"),
    )
}

#[test]
fn sign_prints_the_four_headers_of_the_public_vector() {
    let (code, out, _) = stdout(cli().args([
        "sign",
        "--secret",
        SECRET,
        "--nonce",
        NONCE,
        "--timestamp",
        TIMESTAMP,
        vector_body().to_str().unwrap(),
    ]));
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "x-sinch-webhook-signature: {SIGNATURE}\n\
             x-sinch-webhook-signature-nonce: {NONCE}\n\
             x-sinch-webhook-signature-timestamp: {TIMESTAMP}\n\
             x-sinch-webhook-signature-algorithm: HmacSHA256\n"
        )
    );
}

#[test]
fn verify_accepts_the_public_vector_from_a_file_and_from_stdin() {
    let body = vector_body();
    let (code, out, _) = stdout(verify(&[
        "--secret",
        SECRET,
        "--now",
        TIMESTAMP,
        body.to_str().unwrap(),
    ]));
    assert_eq!((code, out.as_str()), (0, "valid\n"));

    let (code, out, _) = stdout(
        verify(&[
            "--secret",
            SECRET,
            "--now",
            TIMESTAMP,
            "--algorithm",
            "HmacSHA256",
        ])
        .pipe_stdin(&body)
        .unwrap(),
    );
    assert_eq!((code, out.as_str()), (0, "valid\n"));
}

#[test]
fn verify_tries_every_secret() {
    let body = vector_body();
    let (code, out, err) = stdout(verify(&[
        "--secret",
        "old,other",
        "--secret",
        SECRET,
        "--now",
        TIMESTAMP,
        body.to_str().unwrap(),
    ]));
    assert_eq!((code, out.as_str()), (0, "valid\n"));
    assert!(err.contains("matched secret number 3"), "{err}");

    // From the environment, as the Lambda reads it.
    let (code, out, _) = stdout(
        verify(&["--now", TIMESTAMP, body.to_str().unwrap()])
            .env("SINCH_WEBHOOK_SECRET", format!("rotated,{SECRET}")),
    );
    assert_eq!((code, out.as_str()), (0, "valid\n"));
}

#[test]
fn verify_explains_each_rejection_with_exit_1() {
    let body = vector_body();
    let body = body.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--secret", "wrong", "--now", TIMESTAMP, body],
            "invalid: signature_mismatch",
        ),
        (&["--secret", SECRET, body], "invalid: too_old"),
        (
            &[
                "--secret",
                SECRET,
                "--now",
                "1634579000",
                "--max-age",
                "60",
                body,
            ],
            "invalid: too_new",
        ),
        (
            &["--secret", SECRET, "--algorithm", "HmacSHA1", body],
            "invalid: unsupported_algorithm",
        ),
        (
            &[
                "--secret",
                SECRET,
                "--max-age",
                "999999999",
                "--algorithm",
                "HmacSHA256",
                body,
            ],
            "valid",
        ),
    ];
    for (args, expected) in cases {
        let (code, out, _) = stdout(verify(args));
        assert!(out.starts_with(expected), "{args:?}: {out}");
        assert_eq!(code, if expected == "valid" { 0 } else { 1 }, "{args:?}");
    }

    let (code, out, _) = stdout(cli().args([
        "verify",
        "--secret",
        SECRET,
        "--nonce",
        NONCE,
        "--timestamp",
        "soon",
        "--signature",
        SIGNATURE,
        body,
    ]));
    assert_eq!(code, 1);
    assert!(out.starts_with("invalid: malformed_timestamp"), "{out}");

    let (code, out, _) = stdout(cli().args([
        "verify",
        "--secret",
        SECRET,
        "--nonce",
        NONCE,
        "--timestamp",
        TIMESTAMP,
        "--signature",
        "garbage",
        body,
    ]));
    assert_eq!(code, 1);
    assert!(out.starts_with("invalid: malformed_signature"), "{out}");
}

#[test]
fn verify_hints_at_a_trailing_newline() {
    let mut body = std::fs::read(vector_body()).unwrap();
    body.push(b'\n');
    let (code, out, err) =
        stdout(verify(&["--secret", SECRET, "--now", TIMESTAMP]).write_stdin(body));
    assert_eq!(code, 1);
    assert!(out.starts_with("invalid: signature_mismatch"), "{out}");
    assert!(err.contains("ends with a newline"), "{err}");
}

#[test]
fn what_sign_prints_verify_accepts() {
    let body = r#"{"type":"mo_text","body":"Grüße"}"#.as_bytes();
    let (code, out, _) = stdout(cli().args(["sign", "--secret", "s3cret"]).write_stdin(body));
    assert_eq!(code, 0);
    let header = |name: &str| {
        out.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("{name} in {out}"))
            .to_owned()
    };
    let nonce = header("x-sinch-webhook-signature-nonce");
    assert_eq!(nonce.len(), 26, "a fresh ULID");
    let (code, verdict, _) = stdout(
        cli()
            .args([
                "verify",
                "--secret",
                "s3cret",
                "--nonce",
                &nonce,
                "--timestamp",
                &header("x-sinch-webhook-signature-timestamp"),
                "--signature",
                &header("x-sinch-webhook-signature"),
            ])
            .write_stdin(body),
    );
    assert_eq!((code, verdict.as_str()), (0, "valid\n"));
}

#[test]
fn sign_with_url_prints_a_curl_command() {
    let body = vector_body();
    let (code, out, _) = stdout(cli().args([
        "sign",
        "--secret",
        SECRET,
        "--nonce",
        NONCE,
        "--timestamp",
        TIMESTAMP,
        "--url",
        "https://example.com/webhook?x=1&y=2",
        body.to_str().unwrap(),
    ]));
    assert_eq!(code, 0);
    let words = shlex::split(out.trim()).expect("a valid shell command");
    assert_eq!(&words[..4], ["curl", "-sS", "-X", "POST"]);
    assert_eq!(words[4], "https://example.com/webhook?x=1&y=2");
    assert!(words.contains(&format!("x-sinch-webhook-signature: {SIGNATURE}")));
    assert!(words.contains(&format!("x-sinch-webhook-signature-nonce: {NONCE}")));
    assert_eq!(words.last().unwrap(), &format!("@{}", body.display()));

    // From stdin the body is inlined, quoted so the shell passes it unchanged.
    let (code, out, _) = stdout(
        cli()
            .args([
                "sign",
                "--secret",
                "s",
                "--url",
                "http://localhost:3000/webhook",
            ])
            .write_stdin("{\"text\":\"it's $HOME\"}\n"),
    );
    assert_eq!(code, 0);
    let words = shlex::split(out.trim()).expect("a valid shell command");
    assert_eq!(words.last().unwrap(), "{\"text\":\"it's $HOME\"}\n");
}

#[test]
fn input_and_usage_errors_exit_2() {
    let (code, _, err) = stdout(cli().args(["sign", "--secret", "s", "/no/such/file.json"]));
    assert_eq!(code, 2);
    assert!(err.contains("cannot read /no/such/file.json"), "{err}");

    let (code, _, err) = stdout(cli().args(["sign", "--nonce", "n"]).write_stdin("{}"));
    assert_eq!(code, 2);
    assert!(err.contains("--secret"), "{err}");

    let (code, _, err) = stdout(verify(&["--secret", ","]).write_stdin("{}"));
    assert_eq!(code, 2);
    assert!(err.contains("--secret"), "{err}");

    let (code, _, err) = stdout(
        cli()
            .args(["sign", "--secret", "s", "--url", "http://x"])
            .write_stdin(b"\xff\xfe".as_slice()),
    );
    assert_eq!(code, 2);
    assert!(err.contains("not UTF-8"), "{err}");
}

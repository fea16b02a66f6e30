//! `sinch-hooks demo`, the README's first command, run as a process.

use assert_cmd::Command;

#[test]
fn the_demo_runs_every_step_and_exits_0() {
    let output = Command::cargo_bin("sinch-hooks")
        .unwrap()
        .arg("demo")
        .env_remove("RUST_LOG")
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    for line in [
        "receiver: 200 accepted",
        "reply sent on WHATSAPP to 46701234567",
        ": SENT -> QUEUED_ON_CHANNEL -> DELIVERED -> READ",
        "reply sent by SMS from 46700000001 to 46709876543",
        "its per-recipient reports: SENT -> Dispatched -> Delivered",
        "final status READ (history READ -> QUEUED_ON_CHANNEL -> DELIVERED)",
        "duplicate recognised by its message id: no second reply (2 replies in all)",
        "messages API: 202 {\"id\":\"msg_",
        "(history ACCEPTED -> SENT -> QUEUED_ON_CHANNEL -> DELIVERED -> READ)",
        "the same Idempotency-Key and body again: 202, replayed, the same id: true",
        "messages API: 422 \"whatsapp_window_closed\"",
        "receiver: 401 signature_mismatch",
        "receiver: 401 stale_signature",
        "kept in the dead-letter queue (1 message(s) there)",
        "parked by the worker as poison: dead-letter queue holds 2",
        "summary: 15 accepted, 2 rejected, 14 processed, 1 duplicate(s), 3 message(s) at Sinch, 2 in the dead-letter queue",
        "demo finished: every step behaved as expected",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}

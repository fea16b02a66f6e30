//! The cost budget, in the test command: the cost run ([`sinch_hooks::cost`]) at the budget's
//! own `n` against moto, and no kind of message making more AWS calls per message than
//! `infra/cost-budget.json` allows (one more call on every message fails; see docs/cost.md).

use std::path::Path;
use std::process::Command;

use testkit::Moto;

#[test]
fn no_kind_of_message_costs_more_calls_than_the_committed_budget() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let budget_path = root.join("infra/cost-budget.json");
    let budget: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&budget_path).expect("the budget file"))
            .expect("the budget is JSON");
    let n = budget["n"].as_u64().expect("the budget's n");
    let moto = Moto::start();
    let output = Command::new(assert_cmd::cargo::cargo_bin("sinch-hooks"))
        .args(["cost", "--aws-endpoint", moto.endpoint(), "--n"])
        .arg(n.to_string())
        .arg("--budget")
        .arg(&budget_path)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("the CLI runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("within the budget"), "{stdout}");
    // Every kind was measured, with its AWS calls.
    for kind in sinch_hooks::cost::KINDS {
        assert!(stdout.contains(&format!("### {kind}")), "{kind}: {stdout}");
    }
}

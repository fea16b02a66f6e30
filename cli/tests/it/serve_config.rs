//! One configuration: `serve` reads each function's settings with the function's own code, so a
//! bad value of any setting template.yaml gives a function stops `serve` at start, naming it, as
//! it stops the Lambda at init. The list is the template's (read with cfn-lint's loader), not a
//! copy: a setting added there is tried here.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::Moto;

/// AWS resources, which the local stack wires itself, and a setting `serve` takes from its
/// command line instead (`--aws-endpoint`). Secrets' ARNs are refused (serve reads the secrets
/// themselves) and `WORKER_TIMEOUT_SECS` must equal `--function-timeout-secs`: both validated.
const WIRED_BY_THE_STACK: [&str; 12] = [
    "QUEUE_URL",
    "DEAD_LETTER_QUEUE_URL",
    "TABLE_NAME",
    "OUTBOUND_QUEUE_URL",
    "OUTBOUND_QUEUE_ARN",
    "BULK_QUEUE_URL",
    "BULK_QUEUE_ARN",
    "SCHEDULER_ROLE_ARN",
    "SCHEDULE_GROUP",
    "EVENT_BUS_NAME",
    "SINCH_HOOKS_AWS_ENDPOINT",
    // The value is the secret itself.
    "SINCH_WEBHOOK_SECRET",
];

/// Free text, where "banana" is a value like any other: credentials and ids (all-or-nothing
/// sets, checked together), the events' source, a sender, the callers let into the fast lane.
const ANY_TEXT: [&str; 9] = [
    "SINCH_PROJECT_ID",
    "SINCH_KEY_ID",
    "SINCH_KEY_SECRET",
    "SINCH_APP_ID",
    "SINCH_SMS_SERVICE_PLAN_ID",
    "SINCH_SMS_API_TOKEN",
    "SINCH_SMS_SENDER",
    "EVENT_SOURCE",
    "FAST_LANE_BATCH_CALLERS",
];

/// Every variable the template gives any function.
fn template_variables() -> BTreeSet<String> {
    let root = testkit::workspace_root();
    let output = Command::new(Moto::python())
        .arg(root.join("tools/testkit/template_env.py"))
        .arg(root.join("template.yaml"))
        .output()
        .expect("template_env.py runs");
    assert!(
        output.status.success(),
        "template_env.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let by_function: std::collections::BTreeMap<String, Vec<String>> =
        serde_json::from_slice(&output.stdout).expect("its JSON");
    by_function.into_values().flatten().collect()
}

/// `serve` with `name=value`: its exit status and standard error, or `None` if it was still
/// running after 30 s (it took the value and started).
fn serve_with(name: &str, value: &str) -> Option<(bool, String)> {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("sinch-hooks"))
        .args(["serve", "--port", "0"])
        .env("SINCH_WEBHOOK_SECRET", "local-secret")
        .env(name, value)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if let Some(status) = child.try_wait().expect("serve's status") {
            let mut stderr = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .expect("piped")
                .read_to_string(&mut stderr)
                .expect("its standard error");
            return Some((status.success(), stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn every_validated_setting_of_the_template_set_to_banana_stops_serve_naming_it() {
    let variables = template_variables();
    for listed in WIRED_BY_THE_STACK.iter().chain(&ANY_TEXT) {
        assert!(
            variables.contains(*listed),
            "{listed} is no longer in template.yaml: drop it from this test's lists"
        );
    }
    let validated: Vec<&String> = variables
        .iter()
        .filter(|name| !WIRED_BY_THE_STACK.contains(&name.as_str()))
        .filter(|name| !ANY_TEXT.contains(&name.as_str()))
        .collect();
    assert!(validated.len() >= 25, "{validated:?}");
    let mut missed = Vec::new();
    for name in validated {
        match serve_with(name, "banana") {
            Some((false, stderr)) if stderr.contains(name.as_str()) => {}
            Some((success, stderr)) => {
                missed.push(format!("{name}: exit success {success}, said {stderr:?}"))
            }
            None => missed.push(format!("{name}: serve started with it")),
        }
    }
    assert!(missed.is_empty(), "{missed:#?}");
}

#[test]
fn the_workers_timeout_alike_in_the_variable_and_the_flag_starts_serve() {
    // The flag's default is 20 s.
    assert_eq!(
        serve_with("WORKER_TIMEOUT_SECS", "20"),
        None,
        "serve started"
    );
    let (success, stderr) = serve_with("WORKER_TIMEOUT_SECS", "60").expect("serve stops");
    assert!(
        !success && stderr.contains("--function-timeout-secs"),
        "{stderr}"
    );
}

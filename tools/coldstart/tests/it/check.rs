//! The cold-start benchmark works: every function starts and answers its first event (the
//! test command's short form; the timings are the benchmark's, `infra/scripts/coldstart.sh`).

use std::path::Path;
use std::process::Command;

#[test]
fn every_function_starts_cold_and_answers() {
    let coldstart = Path::new(env!("CARGO_BIN_EXE_coldstart"));
    let bin_dir = coldstart.parent().expect("the binaries' directory");
    for function in ["receiver", "worker", "api", "publisher"] {
        assert!(
            bin_dir.join(function).exists(),
            "{function} is not built in {}: run `cargo test --workspace`, which builds every function",
            bin_dir.display()
        );
    }
    let output = Command::new(coldstart)
        .args(["--runs", "1", "--check", "--bin-dir"])
        .arg(bin_dir)
        .output()
        .expect("coldstart runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for function in ["empty-lambda", "receiver", "worker", "api", "publisher"] {
        assert!(stdout.contains(&format!("| {function} |")), "{stdout}");
    }
}

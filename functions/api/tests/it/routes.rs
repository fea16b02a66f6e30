//! The messages API's routes are listed once (`api::routes::ROUTES`): template.yaml's HTTP API
//! events are that list, and the Lambda's router answers each listed method of each path and
//! refuses every other method with 405.

use std::process::Command;

use lambda_http::{Body, Request};
use testkit::Moto;

use super::common::{call, memory_api};

/// template.yaml's routes of the messages API, as `tools/testkit/template_routes.py` reads them.
fn template_routes() -> Vec<(String, String)> {
    let root = testkit::workspace_root();
    let output = Command::new(Moto::python())
        .arg(root.join("tools/testkit/template_routes.py"))
        .arg(root.join("template.yaml"))
        .output()
        .expect("template_routes.py runs");
    assert!(
        output.status.success(),
        "template_routes.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("its JSON")
}

#[test]
fn the_templates_routes_are_the_apis_list() {
    let mut listed: Vec<(String, String)> = api::routes::ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    listed.sort();
    assert_eq!(template_routes(), listed);
}

/// A request for `path` (its placeholders filled) with `method`.
fn request(method: &str, path: &str) -> Request {
    let path = path
        .replace("{id}", "msg_01JC4X9Q8PZ3V5M2N7K6R1T0WY")
        .replace("{channel}", "SMS")
        .replace("{identity}", "46701234567");
    lambda_http::http::Request::builder()
        .method(method)
        .uri(format!("https://api.example.com{path}"))
        .header("content-type", "application/json")
        .header("idempotency-key", "routes")
        .body(Body::Text("{}".into()))
        .unwrap()
}

#[tokio::test]
async fn the_router_answers_each_listed_method_and_405_to_the_others() {
    let api = memory_api();
    for path in api::routes::paths() {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let listed = api::routes::ROUTES.contains(&(method, path));
            let (status, body, _) = call(&api, request(method, path)).await;
            let refused = status == 405 && body["error"]["code"] == "method_not_allowed";
            assert_eq!(
                !refused, listed,
                "{method} {path}: {status} {body} (listed: {listed})"
            );
        }
    }
}

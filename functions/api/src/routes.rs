//! The messages API's routes, listed once: the Lambda's router answers exactly these (a
//! method a path does not list is 405, a path not listed 404), `serve` routes these paths to
//! it, and a test holds template.yaml's HTTP API events to this list
//! (`tests/it/routes.rs`). Paths are written as API Gateway and axum both write them.
//!
//! | method | path | what |
//! |---|---|---|
//! | `POST` | `/messages` | send one message |
//! | `GET`, `DELETE` | `/messages/{id}` | its status; cancel it |
//! | `POST` | `/batches` | send to up to 10,000 recipients |
//! | `GET`, `DELETE` | `/batches/{id}` | its progress; cancel it |
//! | `GET` | `/optouts` | the opted-out contacts, by page |
//! | `GET`, `PUT`, `DELETE` | `/optouts/{channel}/{identity}` | one contact's opt-out |
//! | `DELETE` | `/contacts/{channel}/{identity}` | erase a contact |

/// Every route of the messages API: `(method, path)`.
pub const ROUTES: [(&str, &str); 11] = [
    ("POST", "/messages"),
    ("GET", "/messages/{id}"),
    ("DELETE", "/messages/{id}"),
    ("POST", "/batches"),
    ("GET", "/batches/{id}"),
    ("DELETE", "/batches/{id}"),
    ("GET", "/optouts"),
    ("GET", "/optouts/{channel}/{identity}"),
    ("PUT", "/optouts/{channel}/{identity}"),
    ("DELETE", "/optouts/{channel}/{identity}"),
    ("DELETE", "/contacts/{channel}/{identity}"),
];

/// The distinct paths of [`ROUTES`], in order.
pub fn paths() -> Vec<&'static str> {
    let mut paths: Vec<&'static str> = Vec::new();
    for (_, path) in ROUTES {
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    paths
}

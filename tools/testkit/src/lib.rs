//! Test harness: real AWS APIs on loopback, a proxy that breaks the way networks do
//! ([`proxy::FaultProxy`]), and a store that fails on command ([`faulty::FaultyStore`]).
//!
//! Tests that need AWS talk to `moto_server` over HTTP, one fresh server per test (so tests
//! never see each other's queues and tables; each forked from one that has imported moto, see
//! [`Moto`]), run with DynamoDB's atomicity (`moto_atomic.py`:
//! moto alone lets two racing conditional writes both succeed). `infra/scripts/test.sh` installs moto into
//! `.venv`; this crate finds it there, or through `MOTO_SERVER`, or on `PATH`. A missing moto is
//! a test failure naming the setup command, never a silent skip.

#![warn(missing_docs)]

pub mod bench;
pub mod faulty;
pub mod proxy;

/// A writer that keeps what is written to it (log lines, metrics), for a test to read.
#[derive(Debug, Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    /// What was written so far, as text.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::config::Credentials;

/// How to get moto when it is missing.
pub const SETUP_HINT: &str = "run `infra/scripts/test.sh` (it installs moto into .venv), or set MOTO_SERVER to a moto_server executable";

/// A running `moto_server` of the test's own, gone when dropped.
///
/// Each is forked from one fork server (`moto_atomic.py --fork-server`) that has imported moto
/// and built its backends once: a server costs milliseconds instead of the two CPU-seconds of
/// moto's import, a hundred and more times per test run. The fork server is started by the
/// first test that needs it (under a lock, in its own process group, so that no test's end or
/// timeout stops it), is named after the Python, the scripts and the packages it runs (a
/// changed script or virtualenv gets a new one), and leaves after five idle minutes. A forked server lives as long as the
/// connection it was asked on, which `Moto` holds: dropped, or its test killed, it exits.
pub struct Moto {
    _lease: UnixStream,
    endpoint: String,
}

impl Moto {
    /// Starts a fresh moto_server on a free loopback port, ready for connections.
    ///
    /// Panics with [`SETUP_HINT`] when moto cannot be found or does not come up: a test that
    /// needs AWS cannot run without it.
    pub fn start() -> Moto {
        // A second try for the one race there is: a fork server leaving (idle) as it is asked.
        let mut answer = String::new();
        for _ in 0..2 {
            let mut lease = fork_server_connection();
            lease
                .set_read_timeout(Some(Duration::from_secs(60)))
                .expect("a read timeout on a Unix socket");
            answer.clear();
            let _ = BufReader::new(&mut lease).read_line(&mut answer);
            if let Ok(port) = answer.trim().parse::<u16>() {
                return Moto {
                    _lease: lease,
                    endpoint: format!("http://127.0.0.1:{port}"),
                };
            }
        }
        panic!(
            "moto's fork server gave no server ({answer:?}); its log: {}",
            fork_server_log().display()
        )
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Turns moto's IAM enforcement on: from now on every request is judged against its
    /// identity's policies (`moto_iam.py`), and the dummy credentials are refused.
    pub async fn enforce_iam(&self) {
        let answer = reqwest::Client::new()
            .post(format!("{}/moto-api/reset-auth", self.endpoint))
            .body("0")
            .send()
            .await
            .expect("moto takes reset-auth");
        assert!(
            answer.status().is_success(),
            "moto refused reset-auth: {}",
            answer.status()
        );
    }

    /// The moto server's own Python (moto and boto3 are there), for helper scripts.
    pub fn python() -> PathBuf {
        let program = moto_server_path();
        Some(program.with_file_name("python"))
            .filter(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("python3"))
    }

    /// SDK configuration pointing at this server, with dummy credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.endpoint).await
    }

    /// Creates a queue and returns its URL.
    pub async fn create_queue(&self, name: &str) -> String {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk_config().await);
        sqs.create_queue()
            .queue_name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto refused to create queue {name}: {e:?}"))
            .queue_url
            .expect("CreateQueue returns a URL")
    }
}

/// SDK configuration for any endpoint (moto, or a deliberately broken one), with dummy
/// credentials and region `us-east-1`.
pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "testing", "testing", None, None, "testkit",
        ))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// SDK configuration for `endpoint` as the IAM identity with this access key.
pub async fn sdk_config_as(endpoint: &str, access_key_id: &str, secret: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            access_key_id,
            secret,
            None,
            None,
            "testkit",
        ))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// An endpoint where nothing listens: connections are refused at once.
pub fn refused_endpoint() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

/// An endpoint that accepts connections and never answers, for timeout tests. Keep the
/// listener alive for as long as the endpoint is used.
pub fn silent_endpoint() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let address = listener.local_addr().expect("bound address");
    (listener, format!("http://{address}"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The workspace root, two levels above this crate.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn moto_server_path() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let venv = workspace_root().join(".venv/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("moto_server not found; {SETUP_HINT}"))
}

/// The fork server's socket: in the temporary directory, named after what it runs.
fn fork_server_socket() -> PathBuf {
    let mut hasher = DefaultHasher::new();
    Moto::python().hash(&mut hasher);
    let scripts = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for script in ["moto_atomic.py", "moto_iam.py"] {
        std::fs::read(scripts.join(script))
            .unwrap_or_default()
            .hash(&mut hasher);
    }
    // A reinstalled virtualenv is a new moto: moto's own version, and every other package's
    // (werkzeug, boto3, ...), which its site-packages name (`name-version.dist-info`).
    let program = moto_server_path();
    std::fs::metadata(&program)
        .and_then(|m| m.modified())
        .ok()
        .hash(&mut hasher);
    if let Some(venv) = program.parent().and_then(|bin| bin.parent()) {
        let mut installed: Vec<_> = std::fs::read_dir(venv.join("lib"))
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|python| std::fs::read_dir(python.path().join("site-packages")))
            .flatten()
            .flatten()
            .map(|entry| entry.file_name())
            .filter(|name| name.to_string_lossy().ends_with(".dist-info"))
            .collect();
        installed.sort();
        installed.hash(&mut hasher);
    }
    std::env::temp_dir().join(format!("sinch-hooks-moto-{:016x}.sock", hasher.finish()))
}

fn fork_server_log() -> PathBuf {
    fork_server_socket().with_extension("log")
}

/// A connection to the fork server, which is started when none answers.
fn fork_server_connection() -> UnixStream {
    let socket = fork_server_socket();
    if let Ok(stream) = UnixStream::connect(&socket) {
        return stream;
    }
    // One starter at a time; the others find its server once they get the lock.
    let lock = std::fs::File::create(socket.with_extension("lock"))
        .and_then(|file| file.lock().map(|()| file))
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", socket.display()));
    if let Ok(stream) = UnixStream::connect(&socket) {
        return stream;
    }
    let log_path = fork_server_log();
    let log = std::fs::File::create(&log_path)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", log_path.display()));
    let python = Moto::python();
    // It returns once its socket listens (moto's import takes seconds), the server staying.
    let mut starter = Command::new(&python)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("moto_atomic.py"))
        .args(["-H", "127.0.0.1", "--fork-server"])
        .arg(&socket)
        .args(["--idle-exit", "300"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("a second handle on the log"))
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}; {SETUP_HINT}", python.display()));
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        match starter.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(25)),
            _ => {
                let _ = starter.kill();
                let _ = starter.wait();
                panic!(
                    "moto's fork server did not listen within 120 s: {}\n{SETUP_HINT}",
                    log()
                );
            }
        }
    };
    let log = log();
    assert!(
        status.success(),
        "moto's fork server exited with {status}: {log}\n{SETUP_HINT}"
    );
    let stream = UnixStream::connect(&socket).unwrap_or_else(|e| {
        panic!(
            "moto's fork server does not answer on {}: {e}: {log}",
            socket.display()
        )
    });
    drop(lock);
    stream
}

/// A fake Sinch (wiremock) that already hands out OAuth2 tokens; a test mounts the sends it
/// wants on it.
pub async fn fake_sinch() -> wiremock::MockServer {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"access_token": "t", "expires_in": 3600, "token_type": "bearer"}),
        ))
        .mount(&server)
        .await;
    server
}

/// The in-memory store, as the suites that run against both stores take it.
pub fn memory_store() -> pipeline::store::MemoryStore {
    pipeline::store::MemoryStore::new()
}

/// A DynamoDB store on a fresh table of `moto`, as the template creates it.
pub async fn dynamo_store(moto: &Moto) -> pipeline::store::DynamoStore {
    pipeline::store::DynamoStore::with_new_table(&moto.sdk_config().await, "sinch-hooks")
        .await
        .expect("moto creates the table")
}

/// Runs each async test case `case(store)` twice: with the in-memory store and with DynamoDB on
/// a fresh moto_server ([`memory_store`], [`dynamo_store`]), or with what `memory()` and
/// `dynamo(&moto)` of the calling module build ([`for_both_stores_built!`], for cases that take
/// something built over a store). One suite, two stores.
#[macro_export]
macro_rules! for_both_stores {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case($crate::memory_store()).await
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test]
                async fn $case() {
                    let moto = $crate::Moto::start();
                    super::$case($crate::dynamo_store(&moto).await).await
                }
            )*
        }
    };
}

/// [`for_both_stores!`], each case given what `memory()` and `dynamo(&moto)` of the calling module
/// build over the two stores.
#[macro_export]
macro_rules! for_both_stores_built {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::memory()).await
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test]
                async fn $case() {
                    let moto = $crate::Moto::start();
                    super::$case(super::dynamo(&moto).await).await
                }
            )*
        }
    };
}

/// A queued callback as the receiver would have written it (the signature headers are
/// placeholders: the worker does not check them), received now.
pub fn envelope(body: impl Into<Vec<u8>>) -> envelope::Envelope {
    envelope::Envelope::new(
        body.into(),
        envelope::SignatureHeaders {
            signature: "c2ln".into(),
            nonce: "01FJA8B4A7BM43YGWSG9GBV067".into(),
            timestamp: "1763870400".into(),
            algorithm: None,
        },
        std::time::SystemTime::now(),
    )
}

/// When this test process started, as Sinch writes times (RFC 3339, UTC): for inbound messages
/// that must be fresh (WhatsApp's window opens when the user writes). One value per process, so
/// that a body built twice is the same bytes.
pub fn now_rfc3339() -> String {
    static START: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    START
        .get_or_init(|| {
            time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        })
        .clone()
}

/// Everything a store holds, as text to search: an erasure or a redaction is proven by what
/// is not in it.
pub trait Dump {
    /// The in-memory store's whole state; every item of DynamoDB's table (a full scan).
    fn dump(&self) -> impl std::future::Future<Output = String> + Send;
}

impl Dump for pipeline::store::MemoryStore {
    async fn dump(&self) -> String {
        pipeline::store::MemoryStore::dump(self)
    }
}

impl Dump for pipeline::store::DynamoStore {
    async fn dump(&self) -> String {
        format!("{:?}", self.items().await.expect("the table scans"))
    }
}

#[cfg(test)]
mod tests {
    use super::Moto;

    async fn queues(moto: &Moto) -> Vec<String> {
        aws_sdk_sqs::Client::new(&moto.sdk_config().await)
            .list_queues()
            .send()
            .await
            .expect("moto lists queues")
            .queue_urls
            .unwrap_or_default()
    }

    /// Each test's moto is its own, fresh, and gone once dropped, however many the fork server
    /// has made before it.
    #[tokio::test]
    async fn each_moto_is_fresh_and_gone_when_dropped() {
        let first = Moto::start();
        first.create_queue("only-in-the-first").await;
        let second = Moto::start();
        assert_ne!(first.endpoint(), second.endpoint());
        assert_eq!(queues(&first).await.len(), 1);
        assert!(queues(&second).await.is_empty(), "a fresh server");
        let address = first.endpoint().trim_start_matches("http://").to_owned();
        drop(first);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(&address).is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "{address} still listens 30 s after its Moto was dropped"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(queues(&second).await.is_empty(), "the other one serves on");
    }
}

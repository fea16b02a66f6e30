//! A counting proxy in front of the AWS endpoint (moto): every call the stack makes passes
//! through it and is counted where it lands, by service and operation, with DynamoDB's capacity
//! units worked out from the items ([`super::capacity`]).
//!
//! DynamoDB's single-item calls are counted by the kind of item too (`DynamoDB UpdateItem
//! msg#`): the key's prefix, as the store's keys name them.
//!
//! | service | told by | also counted |
//! |---|---|---|
//! | DynamoDB, DynamoDB Streams, SQS, EventBridge, SSM, Secrets Manager | the `X-Amz-Target` header (AWS JSON protocols) | DynamoDB: WCU and RCU; SQS `ReceiveMessage`: empty receives apart (the event source's idle polling); EventBridge `PutEvents`: entries |
//! | EventBridge Scheduler | a path under `/schedules` (REST) | |
//!
//! To size a write, the proxy needs the item before it and after it. It reads the item after
//! the write straight from the endpoint, off the request's path, and keeps the newest read of
//! each item: that is the item before the next write to it. (A write that follows another to
//! the same item before that one's read is back sees the item one write older; it only
//! matters when the write between changed an index's entry, and the proxy holds no write back
//! to wait for it, which would change the very contention it measures.) An item the proxy has
//! not seen is read before the write, unless the write is a put: in the run's fresh table, an
//! item not seen is an item not there. Those reads are the proxy's own and are not counted.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::capacity::{
    Index, Item, Projection, index_write_units, item_size, read_units, write_units,
};

/// What one operation cost, over all its calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Tally {
    /// Requests.
    pub calls: u64,
    /// DynamoDB write capacity units.
    pub wcu: f64,
    /// DynamoDB read capacity units.
    pub rcu: f64,
    /// EventBridge entries put; SQS messages received.
    pub entries: u64,
}

impl std::ops::Sub for Tally {
    type Output = Self;
    fn sub(self, before: Self) -> Self {
        Self {
            calls: self.calls - before.calls,
            wcu: self.wcu - before.wcu,
            rcu: self.rcu - before.rcu,
            entries: self.entries - before.entries,
        }
    }
}

/// Every operation's tally, keyed `"<service> <operation>"`.
pub type Tallies = BTreeMap<String, Tally>;

/// The tallies after `after` less those of `before`, operations with no calls left out.
pub fn difference(after: &Tallies, before: &Tallies) -> Tallies {
    after
        .iter()
        .map(|(operation, tally)| {
            let before = before.get(operation).copied().unwrap_or_default();
            (operation.clone(), *tally - before)
        })
        .filter(|(_, tally)| tally.calls > 0)
        .collect()
}

struct Proxy {
    upstream: String,
    http: reqwest::Client,
    tallies: Mutex<Tallies>,
    tables: Mutex<HashMap<String, Table>>,
    /// Each item written, as the proxy last read it back: the read's number (later reads have
    /// higher ones) and the item (`None`: there is none).
    images: Mutex<HashMap<String, (u64, Option<Item>)>>,
    /// The next read's number.
    reads: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Clone)]
struct Table {
    keys: Vec<String>,
    /// Its global secondary indexes.
    indexes: Vec<Index>,
}

/// A running proxy.
pub struct Counting {
    /// Where it listens: the stack's AWS endpoint.
    pub address: SocketAddr,
    proxy: Arc<Proxy>,
}

impl Counting {
    /// The tallies so far.
    pub fn tallies(&self) -> Tallies {
        self.proxy
            .tallies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Starts a proxy on loopback in front of `upstream`.
pub async fn start(upstream: &str) -> std::io::Result<Counting> {
    let proxy = Arc::new(Proxy {
        upstream: upstream.trim_end_matches('/').to_owned(),
        http: reqwest::Client::new(),
        tallies: Mutex::default(),
        tables: Mutex::default(),
        images: Mutex::default(),
        reads: std::sync::atomic::AtomicU64::new(0),
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let address = listener.local_addr()?;
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(proxy.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Counting { address, proxy })
}

async fn forward(
    State(proxy): State<Arc<Proxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (service, operation) = name(&target, &method, uri.path());
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let kind = if service == "DynamoDB" {
        item_kind(&request)
    } else {
        String::new()
    };
    let dynamodb_write = service == "DynamoDB"
        && matches!(
            operation.as_str(),
            "PutItem" | "UpdateItem" | "DeleteItem" | "TransactWriteItems" | "BatchWriteItem"
        );
    // The items as they were: the proxy's last image of each, held until the write's own.
    let (touched, before) = if dynamodb_write {
        let touched = proxy.touched(&headers, &request, &operation).await;
        let before = proxy.before(&headers, &touched).await;
        (touched, before)
    } else {
        Default::default()
    };
    let answer = proxy.send(method, &uri, &headers, body).await;
    let Ok((status, response_headers, response)) = answer else {
        return (StatusCode::BAD_GATEWAY, "the AWS endpoint did not answer").into_response();
    };
    let reply: Value = serde_json::from_slice(&response).unwrap_or(Value::Null);
    let mut tally = Tally {
        calls: 1,
        ..Tally::default()
    };
    let mut operation = operation;
    match service.as_str() {
        "DynamoDB" if dynamodb_write => {
            let proxy = proxy.clone();
            let key = format!("{service} {operation}{kind}");
            let operation = operation.clone();
            tokio::spawn(async move {
                let after = proxy.images(&headers, &touched).await;
                let wcu = proxy
                    .write_units(&headers, &operation, &touched, &before, &after)
                    .await;
                proxy.add(
                    &key,
                    Tally {
                        wcu,
                        ..Tally::default()
                    },
                );
            });
        }
        "DynamoDB" => tally.rcu = read_cost(&request, &reply, &operation),
        "SQS" if operation == "ReceiveMessage" => {
            let received = reply["Messages"].as_array().map_or(0, Vec::len) as u64;
            if received == 0 {
                operation = "ReceiveMessage (empty)".to_owned();
            }
            tally.entries = received;
        }
        "EventBridge" if operation == "PutEvents" => {
            tally.entries = request["Entries"].as_array().map_or(0, Vec::len) as u64;
        }
        _ => {}
    }
    proxy.add(&format!("{service} {operation}{kind}"), tally);
    let mut out = Response::new(axum::body::Body::from(response));
    *out.status_mut() = status;
    for (name, value) in &response_headers {
        if name != "content-length" && name != "transfer-encoding" {
            out.headers_mut().append(name, value.clone());
        }
    }
    out
}

/// The kind of item a single-item DynamoDB request touches, as ` <prefix>` (its key up to the
/// first `#`, `idem#`, `msg#`, ...); empty for requests over several items.
fn item_kind(request: &Value) -> String {
    let pk = request["Key"]["pk"]["S"]
        .as_str()
        .or_else(|| request["Item"]["pk"]["S"].as_str());
    pk.and_then(|pk| pk.split_once('#'))
        .map(|(prefix, _)| format!(" {prefix}#"))
        .unwrap_or_default()
}

/// The service and operation of a request.
fn name(target: &str, method: &Method, path: &str) -> (String, String) {
    if let Some((prefix, operation)) = target.split_once('.') {
        let service = match prefix {
            p if p.starts_with("DynamoDBStreams") => "DynamoDB Streams",
            p if p.starts_with("DynamoDB") => "DynamoDB",
            "AmazonSQS" => "SQS",
            "AWSEvents" => "EventBridge",
            "AmazonSSM" => "SSM",
            "secretsmanager" => "Secrets Manager",
            other => other,
        };
        return (service.to_owned(), operation.to_owned());
    }
    if path.starts_with("/schedules") {
        let operation = match *method {
            Method::POST => "CreateSchedule",
            Method::DELETE => "DeleteSchedule",
            Method::PUT => "UpdateSchedule",
            _ => "GetSchedule",
        };
        return ("Scheduler".to_owned(), operation.to_owned());
    }
    ("other".to_owned(), format!("{method} {path}"))
}

fn read_cost(request: &Value, reply: &Value, operation: &str) -> f64 {
    let consistent = request["ConsistentRead"].as_bool().unwrap_or(false);
    let size = |item: &Value| item.as_object().map_or(0, item_size);
    match operation {
        "GetItem" => read_units(size(&reply["Item"]), consistent),
        "Query" | "Scan" => {
            let read: u64 = reply["Items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(size)
                .sum();
            read_units(read, consistent)
        }
        "BatchGetItem" => reply["Responses"]
            .as_object()
            .into_iter()
            .flat_map(|tables| tables.iter())
            .map(|(table, items)| {
                let consistent = request["RequestItems"][table]["ConsistentRead"]
                    .as_bool()
                    .unwrap_or(false);
                items
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|item| read_units(size(item), consistent))
                    .sum::<f64>()
            })
            .sum(),
        "TransactGetItems" => reply["Responses"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| 2.0 * read_units(size(&item["Item"]), true))
            .sum(),
        _ => 0.0,
    }
}

/// One item a write touches: its table and key.
#[derive(Debug, Clone)]
struct Touched {
    table: String,
    key: Map<String, Value>,
    /// The item as written, for a put (its size when there was none before).
    put: Option<Map<String, Value>>,
}

impl Touched {
    /// The item's name in [`Proxy::images`].
    fn name(&self) -> String {
        format!("{}/{}", self.table, Value::Object(self.key.clone()))
    }
}

impl Proxy {
    fn add(&self, operation: &str, tally: Tally) {
        let mut tallies = self.tallies.lock().unwrap_or_else(PoisonError::into_inner);
        let total = tallies.entry(operation.to_owned()).or_default();
        total.calls += tally.calls;
        total.wcu += tally.wcu;
        total.rcu += tally.rcu;
        total.entries += tally.entries;
    }

    async fn send(
        &self,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<(StatusCode, HeaderMap, Bytes), reqwest::Error> {
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.upstream))
            .body(body);
        for (name, value) in headers {
            if name != "host" && name != "content-length" {
                request = request.header(name, value);
            }
        }
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        Ok((status, headers, response.bytes().await?))
    }

    /// A DynamoDB call of the proxy's own, signed as the caller's was (moto reads the region
    /// from it).
    async fn call(&self, headers: &HeaderMap, operation: &str, body: Value) -> Value {
        let mut own = HeaderMap::new();
        for name in ["authorization", "x-amz-date"] {
            if let Some(value) = headers.get(name) {
                own.insert(name, value.clone());
            }
        }
        own.insert(
            "x-amz-target",
            format!("DynamoDB_20120810.{operation}")
                .parse()
                .unwrap_or_else(|_| axum::http::HeaderValue::from_static("")),
        );
        own.insert(
            "content-type",
            axum::http::HeaderValue::from_static("application/x-amz-json-1.0"),
        );
        let uri: Uri = "/".parse().unwrap_or_default();
        match self
            .send(Method::POST, &uri, &own, Bytes::from(body.to_string()))
            .await
        {
            Ok((_, _, bytes)) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    async fn table(&self, headers: &HeaderMap, name: &str) -> Table {
        if let Some(table) = self
            .tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return table.clone();
        }
        let described = self
            .call(headers, "DescribeTable", json!({"TableName": name}))
            .await;
        let names = |schema: &Value| -> Vec<String> {
            schema
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|key| key["AttributeName"].as_str().map(str::to_owned))
                .collect()
        };
        let table = Table {
            keys: names(&described["Table"]["KeySchema"]),
            indexes: described["Table"]["GlobalSecondaryIndexes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|index| Index {
                    keys: names(&index["KeySchema"]),
                    projection: match index["Projection"]["ProjectionType"].as_str() {
                        Some("KEYS_ONLY") => Projection::KeysOnly,
                        Some("INCLUDE") => Projection::Include(
                            index["Projection"]["NonKeyAttributes"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(|name| name.as_str().map(str::to_owned))
                                .collect(),
                        ),
                        _ => Projection::All,
                    },
                })
                .collect(),
        };
        self.tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), table.clone());
        table
    }

    async fn touched(&self, headers: &HeaderMap, request: &Value, operation: &str) -> Vec<Touched> {
        let mut touched = Vec::new();
        let mut one = |table: &Value, key: &Value, put: &Value| {
            if let Some(table) = table.as_str() {
                touched.push(Touched {
                    table: table.to_owned(),
                    key: key.as_object().cloned().unwrap_or_default(),
                    put: put.as_object().cloned(),
                });
            }
        };
        match operation {
            "PutItem" => one(&request["TableName"], &Value::Null, &request["Item"]),
            "UpdateItem" | "DeleteItem" => {
                one(&request["TableName"], &request["Key"], &Value::Null);
            }
            "TransactWriteItems" => {
                for item in request["TransactItems"].as_array().into_iter().flatten() {
                    for kind in ["Put", "Update", "Delete", "ConditionCheck"] {
                        let action = &item[kind];
                        if action.is_object() {
                            one(&action["TableName"], &action["Key"], &action["Item"]);
                        }
                    }
                }
            }
            "BatchWriteItem" => {
                for (table, writes) in request["RequestItems"].as_object().into_iter().flatten() {
                    for write in writes.as_array().into_iter().flatten() {
                        let table = Value::String(table.clone());
                        one(
                            &table,
                            &write["DeleteRequest"]["Key"],
                            &write["PutRequest"]["Item"],
                        );
                    }
                }
            }
            _ => {}
        }
        // A put names its key inside its item.
        for item in &mut touched {
            if let Some(put) = &item.put {
                let keys = self.table(headers, &item.table).await.keys;
                item.key = put
                    .iter()
                    .filter(|(name, _)| keys.contains(name))
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect();
            }
        }
        touched
    }

    /// The items `touched`, as they are now (`None`: no item), kept as the newest images.
    async fn images(&self, headers: &HeaderMap, touched: &[Touched]) -> Vec<Option<Item>> {
        let mut images = Vec::with_capacity(touched.len());
        for touched in touched {
            let read = self
                .reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let found = self
                .call(
                    headers,
                    "GetItem",
                    json!({"TableName": touched.table, "Key": touched.key, "ConsistentRead": true}),
                )
                .await;
            let item = found["Item"].as_object().cloned();
            let mut kept = self.images.lock().unwrap_or_else(PoisonError::into_inner);
            let slot = kept.entry(touched.name()).or_insert((read, None));
            if slot.0 <= read {
                *slot = (read, item.clone());
            }
            images.push(item);
        }
        images
    }

    /// The items `touched` as they were before the write: as last read back, read now when
    /// never seen (nothing, for a put).
    async fn before(&self, headers: &HeaderMap, touched: &[Touched]) -> Vec<Option<Item>> {
        let mut before = Vec::with_capacity(touched.len());
        for item in touched {
            let kept = self
                .images
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&item.name())
                .map(|(_, image)| image.clone());
            before.push(match kept {
                Some(image) => image,
                None if item.put.is_some() => None,
                None => self
                    .images(headers, std::slice::from_ref(item))
                    .await
                    .pop()
                    .flatten(),
            });
        }
        before
    }

    async fn write_units(
        &self,
        headers: &HeaderMap,
        operation: &str,
        touched: &[Touched],
        before: &[Option<Item>],
        after: &[Option<Item>],
    ) -> f64 {
        let factor = if operation == "TransactWriteItems" {
            2.0
        } else {
            1.0
        };
        let mut units = 0.0;
        for ((touched, old), new) in touched.iter().zip(before).zip(after) {
            let sized = |item: &Option<Item>| item.as_ref().map_or(0, item_size);
            let put = touched.put.as_ref().map_or(0, item_size);
            let size = sized(old).max(sized(new)).max(put);
            units += factor * write_units(size);
            let table = self.table(headers, &touched.table).await;
            for index in &table.indexes {
                units += index_write_units(index, &table.keys, old.as_ref(), new.as_ref());
            }
        }
        units
    }
}

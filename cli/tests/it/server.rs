//! `serve`'s HTTP door against slow and broken clients, over raw TCP: slow headers and bodies
//! get 408 and are closed without holding anyone up; malformed framing is 400, never 413; a
//! client that leaves mid-body is counted as aborted.

use super::common;

use std::time::{Duration, Instant};

use common::{SECRET, Serve, inbound, now, serve};
use sinch::signature::sign_headers;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT_SECS: u64 = 2;

fn start() -> Serve {
    serve(
        &[
            "--header-timeout-secs",
            &TIMEOUT_SECS.to_string(),
            "--body-timeout-secs",
            &TIMEOUT_SECS.to_string(),
        ],
        &[],
    )
}

fn address(serve: &Serve) -> String {
    serve.base.trim_start_matches("http://").to_owned()
}

/// Everything the server sends until it closes (or `limit` passes).
async fn read_all(stream: &mut TcpStream, limit: Duration) -> String {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Sends raw bytes and reads the answer until the server closes.
async fn exchange(address: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_all(&mut stream, Duration::from_secs(10)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_do_not_hold_up_a_signed_callback_and_are_closed_with_408() {
    let serve = tokio::task::spawn_blocking(start).await.unwrap();
    let address = address(&serve);
    let request = format!(
        "POST /webhook HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}"
    );
    // 100 clients sending their headers at one byte a second.
    let mut slow = Vec::new();
    for _ in 0..100 {
        let (address, request) = (address.clone(), request.clone());
        slow.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut stream = TcpStream::connect(&address).await.unwrap();
            for byte in request.bytes() {
                if stream.write_all(&[byte]).await.is_err() {
                    break;
                }
                let mut answer = [0u8; 512];
                match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut answer)).await {
                    // The server spoke (or closed): read the rest.
                    Ok(Ok(n)) => {
                        let mut text = String::from_utf8_lossy(&answer[..n]).into_owned();
                        text.push_str(&read_all(&mut stream, Duration::from_secs(2)).await);
                        return (text, started.elapsed());
                    }
                    Ok(Err(_)) => return (String::new(), started.elapsed()),
                    Err(_) => {}
                }
            }
            (String::from("never closed"), started.elapsed())
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Meanwhile, a valid signed callback.
    let body = inbound("01SLOWLORIS", "hello");
    let signed = sign_headers(SECRET, &body, "01FJA8B4A7BM43YGWSG9GBV067", now());
    let client = reqwest::Client::new();
    let mut post = client.post(format!("{}/webhook", serve.base)).body(body);
    for (name, value) in signed.pairs() {
        post = post.header(name, value.to_string());
    }
    let started = Instant::now();
    let answer = post.send().await.unwrap();
    let took = started.elapsed();
    assert_eq!(answer.status().as_u16(), 200);
    assert!(took < Duration::from_millis(100), "took {took:?}");

    for task in slow {
        let (answer, took) = task.await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "a slow client gets 408: {answer:?}"
        );
        assert!(answer.contains("header_timeout"), "{answer}");
        assert!(
            took < Duration::from_secs(TIMEOUT_SECS + 3),
            "closed after the timeout, not {took:?}"
        );
    }
    let status = tokio::task::block_in_place(|| serve.status());
    assert_eq!(status["rejected"]["header_timeout"], 100, "{status}");
    assert_eq!(status["accepted"], 1, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_broken_bodies_are_408_and_400_never_413() {
    let serve = tokio::task::spawn_blocking(start).await.unwrap();
    let address = address(&serve);

    // A body that stops coming.
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"POST /webhook HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"partial\":")
        .await
        .unwrap();
    let started = Instant::now();
    let answer = read_all(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(TIMEOUT_SECS + 2));

    // A chunk whose size is not a number.
    let answer = exchange(
        &address,
        b"POST /webhook HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(!answer.contains("body_too_large"), "{answer}");

    // Content-Length and chunked together: request smuggling's favourite.
    let answer = exchange(
        &address,
        b"POST /webhook HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("ambiguous_length"), "{answer}");

    // A client that leaves in the middle of its body.
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"POST /webhook HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"gone\":")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);

    let until = Instant::now() + Duration::from_secs(5);
    let status = loop {
        let status = tokio::task::block_in_place(|| serve.status());
        if status["rejected"]["client_aborted"] == 1 || Instant::now() > until {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status["rejected"]["client_aborted"], 1, "{status}");
    assert_eq!(status["rejected"]["body_timeout"], 1, "{status}");
    assert_eq!(status["rejected"]["ambiguous_length"], 1, "{status}");
    assert!(
        status["rejected"].get("body_too_large").is_none(),
        "{status}"
    );
    assert_eq!(status["accepted"], 0, "{status}");
}

//! A TCP proxy that breaks on command, for outage tests: put it between the stack and a real
//! server (moto_server) and switch it while traffic flows.
//!
//! | mode | new connections | connections already open |
//! |---|---|---|
//! | [`Mode::Pass`] | forwarded to the upstream | forwarded |
//! | [`Mode::Refuse`] | accepted and reset at once (RST) | reset (RST), both sides |
//! | [`Mode::Blackhole`] | accepted, then nothing: no byte read or written | stalled: nothing forwarded either way |
//!
//! Leaving a blackhole (to either other mode) resets what it held, as a network that comes back
//! finds the old connections dead. The proxy runs on a thread of its own, so blocking tests can
//! use it too; dropping it stops it.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

/// What the proxy does with traffic now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwards every byte.
    Pass,
    /// Resets connections.
    Refuse,
    /// Accepts connections and stalls them.
    Blackhole,
}

/// A running proxy; stopped when dropped.
pub struct FaultProxy {
    address: SocketAddr,
    mode: watch::Sender<Mode>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on a free loopback port, forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let (mode, modes) = watch::channel(Mode::Pass);
        let (stop, stopped) = oneshot::channel();
        let (bound, address) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the proxy");
            runtime.block_on(async move {
                let listener = TcpListener::bind(("127.0.0.1", 0))
                    .await
                    .expect("bind a loopback port");
                let _ = bound.send(listener.local_addr().expect("bound address"));
                tokio::select! {
                    _ = accept(listener, upstream, modes) => {}
                    _ = stopped => {}
                }
            });
        });
        let address = address.recv().expect("the proxy starts");
        FaultProxy {
            address,
            mode,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, to use as an endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Resets every connection, and every new one, until restored.
    pub fn refuse(&self) {
        self.mode.send_replace(Mode::Refuse);
    }

    /// Accepts connections and stalls them, and stalls the open ones, until restored.
    pub fn blackhole(&self) {
        self.mode.send_replace(Mode::Blackhole);
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.mode.send_replace(Mode::Pass);
    }

    /// What it does now.
    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept(listener: TcpListener, upstream: SocketAddr, modes: watch::Receiver<Mode>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let modes = modes.clone();
        tokio::spawn(async move {
            let mode = *modes.borrow();
            match mode {
                Mode::Refuse => reset(client),
                Mode::Blackhole => {
                    hold(modes).await;
                    reset(client);
                }
                Mode::Pass => forward(client, upstream, modes).await,
            }
        });
    }
}

/// Copies both ways until either side closes, or the mode changes.
async fn forward(mut client: TcpStream, upstream: SocketAddr, mut modes: watch::Receiver<Mode>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        reset(client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let changed = async {
        loop {
            if modes.changed().await.is_err() {
                return Mode::Refuse;
            }
            let mode = *modes.borrow_and_update();
            if mode != Mode::Pass {
                return mode;
            }
        }
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {
            let _ = client.shutdown().await;
        }
        mode = changed => {
            if mode == Mode::Blackhole {
                hold(modes).await;
            }
            reset(client);
            reset(server);
        }
    }
}

/// Waits while the proxy is a blackhole.
async fn hold(mut modes: watch::Receiver<Mode>) {
    while *modes.borrow_and_update() == Mode::Blackhole {
        if modes.changed().await.is_err() {
            return;
        }
    }
}

/// Closes with RST rather than FIN: the peer sees "connection reset".
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{ErrorKind, Read, Write};
    use std::time::Duration;

    /// An upstream that echoes every byte.
    fn echo() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut buffer = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buffer) {
                        if n == 0 || stream.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        address
    }

    fn connect(proxy: &FaultProxy) -> std::net::TcpStream {
        let stream = std::net::TcpStream::connect(proxy.address()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        stream
    }

    fn round_trip(stream: &mut std::net::TcpStream) -> std::io::Result<Vec<u8>> {
        stream.write_all(b"ping")?;
        let mut buffer = [0u8; 4];
        stream.read_exact(&mut buffer)?;
        Ok(buffer.to_vec())
    }

    #[test]
    fn passes_refuses_stalls_and_restores() {
        let proxy = FaultProxy::start(echo());
        let mut open = connect(&proxy);
        assert_eq!(round_trip(&mut open).unwrap(), b"ping");

        proxy.refuse();
        std::thread::sleep(Duration::from_millis(50));
        let error = round_trip(&mut open).unwrap_err();
        assert!(
            matches!(
                error.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::UnexpectedEof
            ),
            "an open connection is reset: {error:?}"
        );
        let error = round_trip(&mut connect(&proxy)).unwrap_err();
        assert!(
            matches!(
                error.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::UnexpectedEof
            ),
            "a new connection is reset: {error:?}"
        );

        proxy.restore();
        let mut open = connect(&proxy);
        assert_eq!(round_trip(&mut open).unwrap(), b"ping");
        proxy.blackhole();
        std::thread::sleep(Duration::from_millis(50));
        let error = round_trip(&mut open).unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "an open connection stalls: {error:?}"
        );
        let error = round_trip(&mut connect(&proxy)).unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "a new connection stalls: {error:?}"
        );

        proxy.restore();
        assert_eq!(proxy.mode(), Mode::Pass);
        assert_eq!(round_trip(&mut connect(&proxy)).unwrap(), b"ping");
    }
}

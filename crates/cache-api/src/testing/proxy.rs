//! Faults on the wire: a TCP proxy between a client and its server, on loopback, that a test
//! turns bad and heals at run time (Toxiproxy's model, in process).
//!
//! ```no_run
//! use steadycache_api::testing::proxy::FaultProxy;
//! use std::time::Duration;
//! let proxy = FaultProxy::start(6379).unwrap(); // in front of a server on 127.0.0.1:6379
//! let url = format!("redis://127.0.0.1:{}", proxy.port());
//! proxy.latency(Duration::from_millis(200), Duration::from_millis(100));
//! proxy.black_hole(); // bytes stop flowing; no connection closes
//! proxy.heal(); // everything flows again, held bytes first
//! proxy.reset_all(); // every open connection gets a TCP reset
//! proxy.reset_after(64 * 1024); // a reply is cut by a reset after 64 KiB
//! ```
//!
//! Why our own and not the `noxious` crate (a Rust port of Toxiproxy): noxious is a server
//! driven over HTTP, its toxics are private to it, it has no connection reset, and it pins
//! dependencies three majors behind this workspace's (tokio-util 0.6, rand 0.8). What the
//! tests need is a few faults on one link, switched from the test itself; this is that, on the
//! tokio the workspace already builds.
//!
//! One proxy is one link: to cut one client off while another carries on, give each its own
//! proxy. The proxy runs on a thread and runtime of its own (so it keeps forwarding whatever
//! the test's own runtime does) and only ever listens on, and connects to, `127.0.0.1`.
//!
//! The faults, all in both directions:
//! - **latency** `base ± jitter` before each chunk is forwarded (chunks keep their order);
//! - **bandwidth**: at most so many bytes a second;
//! - **black hole**: nothing is read or forwarded and nothing is closed (a half-open socket:
//!   the client's writes fill the socket buffers, its reads wait); new connections are
//!   accepted and held the same way. What was held flows once healed, as TCP delivers after a
//!   partition heals;
//! - **reset**: every open connection is closed with a TCP RST (the client sees "connection
//!   reset"); `reset_after(n)`: each connection is reset once it has carried `n` bytes from the
//!   server (a reply cut in the middle).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The faults in force on a proxy's link.
#[derive(Clone, Debug, Default, PartialEq)]
struct Faults {
    latency: Duration,
    jitter: Duration,
    /// Bytes a second, each way; `None`: unlimited.
    bandwidth: Option<u64>,
    black_hole: bool,
    /// Reset each connection after it carried this many bytes from the server.
    reset_after: Option<u64>,
    /// Bumped by `reset_all`: a connection older than the current round is reset.
    resets: u64,
}

/// A TCP fault proxy in front of a server on `127.0.0.1` (see the [module docs](self)).
#[derive(Debug)]
pub struct FaultProxy {
    port: u16,
    faults: watch::Sender<Faults>,
    stats: Arc<Stats>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What a proxy has seen.
#[derive(Debug, Default)]
struct Stats {
    connections: AtomicU64,
    resets: AtomicU64,
    to_server: AtomicU64,
    to_client: AtomicU64,
}

impl FaultProxy {
    /// A proxy on a free port of `127.0.0.1`, forwarding to `127.0.0.1:upstream_port`, with no
    /// fault in force.
    pub fn start(upstream_port: u16) -> io::Result<FaultProxy> {
        let upstream = SocketAddr::from(([127, 0, 0, 1], upstream_port));
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let (faults, watching) = watch::channel(Faults::default());
        let stats = Arc::new(Stats::default());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let counts = stats.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{port}"))
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = accept_loop(listener, upstream, watching, counts) => {}
                        _ = stopped => {}
                    }
                })
            })?;
        Ok(FaultProxy {
            port,
            faults,
            stats,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The port clients connect to (on `127.0.0.1`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Wait `base ± jitter` (uniformly) before forwarding each chunk, each way.
    pub fn latency(&self, base: Duration, jitter: Duration) {
        self.faults.send_modify(|f| {
            f.latency = base;
            f.jitter = jitter.min(base);
        });
    }

    /// Forward at most `bytes_per_second` each way (at least 1).
    pub fn bandwidth(&self, bytes_per_second: u64) {
        self.faults
            .send_modify(|f| f.bandwidth = Some(bytes_per_second.max(1)));
    }

    /// Stop forwarding without closing anything (see the [module docs](self)).
    pub fn black_hole(&self) {
        self.faults.send_modify(|f| f.black_hole = true);
    }

    /// Close every open connection with a TCP reset (new ones are accepted as before).
    pub fn reset_all(&self) {
        self.faults.send_modify(|f| f.resets += 1);
    }

    /// Reset each connection once it has carried `bytes` from the server to the client.
    pub fn reset_after(&self, bytes: u64) {
        self.faults.send_modify(|f| f.reset_after = Some(bytes));
    }

    /// No fault in force any more: held bytes flow, latency and limits are gone.
    pub fn heal(&self) {
        self.faults.send_modify(|f| {
            *f = Faults {
                resets: f.resets,
                ..Faults::default()
            }
        });
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.stats.connections.load(Relaxed)
    }

    /// Connections closed with a reset so far.
    pub fn resets(&self) -> u64 {
        self.stats.resets.load(Relaxed)
    }

    /// Bytes forwarded so far: (client to server, server to client).
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.stats.to_server.load(Relaxed),
            self.stats.to_client.load(Relaxed),
        )
    }
}

impl Drop for FaultProxy {
    /// Stops listening and drops every connection (their sockets close).
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    faults: watch::Receiver<Faults>,
    stats: Arc<Stats>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        stats.connections.fetch_add(1, Relaxed);
        tokio::spawn(connection(client, upstream, faults.clone(), stats.clone()));
    }
}

/// One client's connection: held while black-holed, then joined to a new server connection.
async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    mut faults: watch::Receiver<Faults>,
    stats: Arc<Stats>,
) {
    let round = faults.borrow().resets;
    if !passable(&mut faults, round).await {
        return reset(client, &stats);
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return reset(client, &stats);
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let carried = Arc::new(AtomicU64::new(0));
    let up = pump(
        client_read,
        server_write,
        faults.clone(),
        None,
        stats.clone(),
    );
    let down = pump(server_read, client_write, faults, Some(carried), stats);
    // The first direction to end (a close, a reset) ends the connection: both sockets close
    // when the halves are dropped here, the client's with a reset if one was asked for.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// Whether the link may carry bytes now: waits out a black hole; `false` once a reset round
/// newer than `round` began.
async fn passable(faults: &mut watch::Receiver<Faults>, round: u64) -> bool {
    loop {
        let (black_hole, resets) = {
            let f = faults.borrow_and_update();
            (f.black_hole, f.resets)
        };
        if resets != round {
            return false;
        }
        if !black_hole {
            return true;
        }
        if faults.changed().await.is_err() {
            return false;
        }
    }
}

/// Close `stream` with a TCP reset.
fn reset(stream: TcpStream, stats: &Stats) {
    stats.resets.fetch_add(1, Relaxed);
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Forward from `from` to `to` under the faults in force, until either side closes (`false`)
/// or the connection must be reset (`true`: the client's socket is then set to close with a
/// reset). `carried` is the count of bytes from the server: `Some` for that direction.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut faults: watch::Receiver<Faults>,
    carried: Option<Arc<AtomicU64>>,
    stats: Arc<Stats>,
) -> bool {
    let round = faults.borrow().resets;
    let mut buf = vec![0u8; 16 * 1024];
    let reset = |from: &OwnedReadHalf, to: &OwnedWriteHalf| {
        let client: &TcpStream = match carried {
            Some(_) => to.as_ref(),
            None => from.as_ref(),
        };
        let _ = client.set_zero_linger();
        stats.resets.fetch_add(1, Relaxed); // before the socket closes: a test may count at once
        true
    };
    loop {
        if !passable(&mut faults, round).await {
            return reset(&from, &to);
        }
        let limit = faults.borrow().bandwidth.map_or(buf.len(), |bps| {
            usize::try_from(bps / 10)
                .unwrap_or(usize::MAX)
                .clamp(1, buf.len())
        });
        let n = tokio::select! {
            r = from.read(&mut buf[..limit]) => match r {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            },
            // A fault switched on while waiting for bytes: look again.
            _ = faults.changed() => continue,
        };
        let f = faults.borrow().clone();
        let wait = delay(&f, n);
        if !wait.is_zero() {
            // (Not a zero sleep: the timer's millisecond would slow every chunk.)
            tokio::time::sleep(wait).await;
        }
        if !passable(&mut faults, round).await {
            return reset(&from, &to);
        }
        let (chunk, cut) = match (&carried, f.reset_after) {
            (Some(c), Some(after)) => {
                let before = c.fetch_add(n as u64, Relaxed);
                let room = after.saturating_sub(before);
                let take = usize::try_from(room).unwrap_or(usize::MAX).min(n);
                (&buf[..take], (before + n as u64) >= after)
            }
            _ => (&buf[..n], false),
        };
        if to.write_all(chunk).await.is_err() {
            return false;
        }
        let counter = match carried {
            Some(_) => &stats.to_client,
            None => &stats.to_server,
        };
        counter.fetch_add(chunk.len() as u64, Relaxed);
        if cut {
            return reset(&from, &to);
        }
    }
}

/// How long to hold a chunk of `n` bytes: the latency (with its jitter) and the time the
/// bandwidth allows for it.
fn delay(f: &Faults, n: usize) -> Duration {
    let jitter = match f.jitter.as_millis() {
        0 => Duration::ZERO,
        j => Duration::from_millis(fastrand::u64(0..=u64::try_from(j * 2).unwrap_or(u64::MAX))),
    };
    let latency = (f.latency + jitter).saturating_sub(f.jitter);
    let transfer = f.bandwidth.map_or(Duration::ZERO, |bps| {
        Duration::from_secs_f64(n as f64 / bps.max(1) as f64)
    });
    latency + transfer
}

//! Real Redis servers for tests (feature `testing`): [`RedisServer`] starts one `redis-server`
//! on a free loopback port, [`RedisCluster`] three masters joined into a cluster. Each lives in
//! its own temporary directory, persists nothing (`--save '' --appendonly no`) and is killed
//! when dropped, so test suites can run side by side. `redis-server` and `redis-cli` must be on
//! the `PATH` (`scripts/test.sh` installs them).
//!
//! This is test support: it panics with a clear message when a server cannot be started.
//!
//! A server held in a `static` is never dropped, so each one runs under a small `sh` watchdog,
//! in a process group of its own, that kills it once the test process is gone: no server
//! outlives the test binary that started it (by more than half a second).

/// The watchdog: runs `redis-server "$@"`, and kills it when the process `$WATCH` (the test
/// binary) is gone or when it exits by itself.
const WATCHDOG: &str = r#"redis-server "$@" &
s=$!
trap 'kill -9 $s 2>/dev/null; wait $s 2>/dev/null' EXIT
trap 'exit 0' TERM
while kill -0 "$WATCH" 2>/dev/null && kill -0 "$s" 2>/dev/null; do sleep 0.5; done"#;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` process on `127.0.0.1`.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    cluster: bool,
    /// Serves TLS only (its certificates are in `dir`).
    tls: bool,
    child: Option<Child>,
}

/// A free loopback port (and, for a cluster node, its bus port `port + 10000` free too).
fn free_port(cluster: bool) -> u16 {
    for _ in 0..200 {
        let Ok(l) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = l.local_addr() else { continue };
        let port = addr.port();
        if !cluster {
            return port;
        }
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port found")
}

/// Send one inline command and read what comes back within `timeout` (enough for the short
/// replies the harness needs).
fn inline(port: u16, command: &str, timeout: Duration) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.write_all(format!("{command}\r\n").as_bytes()).ok()?;
    let mut buf = vec![0u8; 8192];
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&out);
                // A simple reply, or a bulk reply whose announced length has arrived.
                if text.starts_with('+') || text.starts_with('-') || text.starts_with(':') {
                    if text.ends_with("\r\n") {
                        break;
                    }
                } else if let Some(rest) = text.strip_prefix('$') {
                    let len: usize = rest.split("\r\n").next()?.parse().ok()?;
                    if out.len() >= len + rest.find("\r\n")? + 5 {
                        break;
                    }
                }
            }
            Err(_) => break,
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

impl RedisServer {
    /// Start a standalone server on a free port and wait until it answers `PING`.
    pub fn start() -> RedisServer {
        Self::start_with(false, false)
    }

    /// Start a server that speaks only TLS, with a certificate for `127.0.0.1` signed by a CA
    /// made for it (with `openssl`); [`url`](RedisServer::url) is a `rediss://` URL naming that
    /// CA in `tls_ca`.
    pub fn start_tls() -> RedisServer {
        Self::start_with(false, true)
    }

    fn start_with(cluster: bool, tls: bool) -> RedisServer {
        if let Err(e) = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
        {
            panic!("cannot run redis-server ({e}); install it: apt-get install redis-server");
        }
        let dir = std::env::temp_dir().join(format!(
            "steadycache-redis-{}-{:08x}",
            std::process::id(),
            rand_u32()
        ));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        if tls {
            make_certificates(&dir);
        }
        let mut last = String::new();
        for _ in 0..5 {
            let mut server = RedisServer {
                port: free_port(cluster),
                dir: dir.clone(),
                cluster,
                tls,
                child: None,
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", WATCHDOG, "sh"])
            .env("WATCH", std::process::id().to_string())
            .process_group(0);
        if self.tls {
            cmd.args([
                "--port",
                "0",
                "--tls-port",
                &port,
                "--tls-auth-clients",
                "no",
            ])
            .arg("--tls-cert-file")
            .arg(self.dir.join("server.crt"))
            .arg("--tls-key-file")
            .arg(self.dir.join("server.key"))
            .arg("--tls-ca-cert-file")
            .arg(self.dir.join("ca.crt"));
        } else {
            cmd.args(["--port", &port]);
        }
        cmd.args([
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
        ])
        .arg("--dir")
        .arg(&self.dir)
        .arg("--logfile")
        .arg(self.dir.join(format!("redis-{port}.log")));
        if self.cluster {
            cmd.args(["--cluster-enabled", "yes", "--cluster-config-file"])
                .arg(self.dir.join(format!("nodes-{port}.conf")));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run sh for redis-server: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Err(format!("redis-server on port {port} exited: {status}"));
                }
            }
            let ready = if self.tls {
                // It listens once it has loaded its certificates.
                TcpStream::connect_timeout(
                    &([127, 0, 0, 1], self.port).into(),
                    Duration::from_millis(200),
                )
                .is_ok()
            } else {
                inline(self.port, "PING", Duration::from_millis(200))
                    .is_some_and(|r| r.starts_with("+PONG"))
            };
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        Err(format!("redis-server on port {port} did not answer PING"))
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/0`, or for a TLS server
    /// `rediss://127.0.0.1:<port>/0?tls_ca=<its CA file>`.
    pub fn url(&self) -> String {
        if self.tls {
            format!(
                "rediss://127.0.0.1:{}/0?tls_ca={}",
                self.port,
                self.dir.join("ca.crt").display()
            )
        } else {
            format!("redis://127.0.0.1:{}/0", self.port)
        }
    }

    /// Kill the server with SIGKILL (the watchdog does it, and reaps it, on SIGTERM; if the
    /// watchdog does not exit within 5 s its whole process group gets SIGKILL) and wait until
    /// the port is closed: for outage tests.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let signal = |args: &[&str]| {
                let _ = Command::new("kill")
                    .args(args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            };
            signal(&["-TERM", &c.id().to_string()]);
            let deadline = Instant::now() + Duration::from_secs(5);
            while !matches!(c.try_wait(), Ok(Some(_)) | Err(_)) {
                if Instant::now() > deadline {
                    signal(&["-9", "--", &format!("-{}", c.id())]);
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline
                && TcpStream::connect_timeout(
                    &([127, 0, 0, 1], self.port).into(),
                    Duration::from_millis(100),
                )
                .is_ok()
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Start the server again on the same port (after [`kill`](RedisServer::kill)); its data is
    /// gone.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.spawn() {
            panic!("redis-server did not restart: {e}");
        }
    }

    /// Send one inline command (`"DBSIZE"`, `"PTTL key"`) and return the raw reply (plain
    /// servers only).
    pub fn command(&self, command: &str) -> String {
        inline(self.port, command, Duration::from_secs(2)).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three `redis-server --cluster-enabled yes` masters joined with `redis-cli --cluster create`.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Start three masters, create the cluster (no replicas) and wait until every node reports
    /// `cluster_state:ok`.
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::start_with(true, false))
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => {
                panic!("cannot run redis-cli ({e}); install redis-server (it brings redis-cli)")
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = nodes.iter().all(|n| {
                inline(n.port, "CLUSTER INFO", Duration::from_millis(500))
                    .is_some_and(|r| r.contains("cluster_state:ok"))
            });
            if ok {
                return RedisCluster { nodes };
            }
            if Instant::now() > deadline {
                panic!("the redis cluster did not reach cluster_state:ok");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis://127.0.0.1:<first>/?cluster=true&nodes=<second>,<third>`.
    pub fn url(&self) -> String {
        let others: Vec<String> = self
            .nodes
            .iter()
            .skip(1)
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!(
            "redis://127.0.0.1:{}/?cluster=true&nodes={}",
            self.nodes.first().map_or(0, |n| n.port),
            others.join(",")
        )
    }

    /// The masters.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

/// A CA and a server certificate for `127.0.0.1` / `localhost`, signed by it, in `dir`.
fn make_certificates(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => panic!("cannot run openssl ({e}); install it: apt-get install openssl"),
        }
    };
    if let Err(e) = std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    ) {
        panic!("cannot write server.ext: {e}");
    }
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=steadycache test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    t ^ N.fetch_add(0x9E37_79B9, std::sync::atomic::Ordering::Relaxed)
}

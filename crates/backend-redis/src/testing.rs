//! Real Redis servers for tests (feature `testing`): [`RedisServer`] starts one `redis-server`
//! on a free loopback port, [`RedisCluster`] three masters joined into a cluster. Each lives in
//! its own temporary directory, persists nothing (`--save '' --appendonly no`) and is killed
//! when dropped, so test suites can run side by side. `redis-server` and `redis-cli` must be on
//! the `PATH` (`scripts/test.sh` installs them).
//!
//! This is test support: it panics with a clear message when a server cannot be started.
//! Servers run under the watchdog of [`steadycache_api::testing::server`], so none outlives the test
//! binary that started it.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use steadycache_api::testing::server::{free_port, port_open, ServerProcess};

/// A `redis-server` process on `127.0.0.1`.
#[derive(Debug)]
pub struct RedisServer {
    dir: PathBuf,
    /// Serves TLS only (its certificates are in `dir`).
    tls: bool,
    process: ServerProcess,
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
            let port = free_port(if cluster { 10_000 } else { 0 });
            let args = server_args(&dir, port, cluster, tls);
            let ready = if tls { port_open } else { answers_ping };
            match ServerProcess::start("redis-server", args, port, ready) {
                Ok(process) => return RedisServer { dir, tls, process },
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// `redis://127.0.0.1:<port>/0`, or for a TLS server
    /// `rediss://127.0.0.1:<port>/0?tls_ca=<its CA file>`.
    pub fn url(&self) -> String {
        if self.tls {
            format!(
                "rediss://127.0.0.1:{}/0?tls_ca={}",
                self.port(),
                self.dir.join("ca.crt").display()
            )
        } else {
            format!("redis://127.0.0.1:{}/0", self.port())
        }
    }

    /// Kill the server (SIGKILL) and wait until its port is closed: for outage tests.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Start the server again on the same port (after [`kill`](RedisServer::kill)); its data is
    /// gone.
    pub fn restart(&mut self) {
        if let Err(e) = self.process.restart() {
            panic!("redis-server did not restart: {e}");
        }
    }

    /// Send one inline command (`"DBSIZE"`, `"PTTL key"`) and return the raw reply (plain
    /// servers only).
    pub fn command(&self, command: &str) -> String {
        inline(self.port(), command, Duration::from_secs(2)).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.process.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn answers_ping(port: u16) -> bool {
    inline(port, "PING", Duration::from_millis(200)).is_some_and(|r| r.starts_with("+PONG"))
}

/// The command line of a server on `port` keeping its files in `dir`.
fn server_args(dir: &std::path::Path, port: u16, cluster: bool, tls: bool) -> Vec<OsString> {
    let port = port.to_string();
    let file = |name: String| dir.join(name).into_os_string();
    let mut a: Vec<OsString> = Vec::new();
    let mut flags = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    if tls {
        flags(&[
            "--port",
            "0",
            "--tls-port",
            &port,
            "--tls-auth-clients",
            "no",
        ]);
    } else {
        flags(&["--port", &port]);
    }
    flags(&[
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
    ]);
    if cluster {
        flags(&["--cluster-enabled", "yes"]);
    }
    let mut files = vec![
        ("--dir", dir.as_os_str().to_owned()),
        ("--logfile", file(format!("redis-{port}.log"))),
    ];
    if cluster {
        files.push(("--cluster-config-file", file(format!("nodes-{port}.conf"))));
    }
    if tls {
        files.push(("--tls-cert-file", file("server.crt".into())));
        files.push(("--tls-key-file", file("server.key".into())));
        files.push(("--tls-ca-cert-file", file("ca.crt".into())));
    }
    for (flag, value) in files {
        a.push(flag.into());
        a.push(value);
    }
    a
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
            .map(|n| format!("127.0.0.1:{}", n.port()))
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
                inline(n.port(), "CLUSTER INFO", Duration::from_millis(500))
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
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        format!(
            "redis://127.0.0.1:{}/?cluster=true&nodes={}",
            self.nodes.first().map_or(0, |n| n.port()),
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

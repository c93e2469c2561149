//! Real server processes for backend tests: a free loopback port, a process started under a
//! watchdog, readiness, kill and restart on the same port.
//!
//! A server held in a `static` is never dropped, so each one runs under a small `sh` watchdog,
//! in a process group of its own, that kills it once the test process is gone: no server
//! outlives the test binary that started it by more than half a second, and the watchdog reaps
//! it (a container's PID 1 may not reap orphans).

use std::ffi::OsString;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The watchdog: runs `"$@"` (program and arguments) and kills it when the process `$WATCH`
/// (the test binary) is gone, when it exits by itself, or when the watchdog gets SIGTERM.
const WATCHDOG: &str = r#""$@" &
s=$!
trap 'kill -9 $s 2>/dev/null; wait $s 2>/dev/null' EXIT
trap 'exit 0' TERM
while kill -0 "$WATCH" 2>/dev/null && kill -0 "$s" 2>/dev/null; do sleep 0.5; done"#;

/// A free loopback port; with `plus` > 0, `port + plus` is free too (a Redis cluster node's bus
/// port is `port + 10000`).
pub fn free_port(plus: u16) -> u16 {
    for _ in 0..200 {
        let Ok(l) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = l.local_addr() else { continue };
        let port = addr.port();
        if plus == 0 {
            return port;
        }
        if let Some(other) = port.checked_add(plus) {
            if TcpListener::bind(("127.0.0.1", other)).is_ok() {
                return port;
            }
        }
    }
    panic!("no free loopback port found")
}

/// Whether something accepts connections on `127.0.0.1:port`.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// A server process on a loopback port, under the watchdog.
#[derive(Debug)]
pub struct ServerProcess {
    program: OsString,
    args: Vec<OsString>,
    port: u16,
    ready: fn(u16) -> bool,
    child: Option<Child>,
}

impl ServerProcess {
    /// Start `program args` (which must listen on `port`) and wait up to 15 s until
    /// `ready(port)`; an error says why it did not come up.
    pub fn start(
        program: impl Into<OsString>,
        args: Vec<OsString>,
        port: u16,
        ready: fn(u16) -> bool,
    ) -> Result<ServerProcess, String> {
        let mut p = ServerProcess {
            program: program.into(),
            args,
            port,
            ready,
            child: None,
        };
        p.spawn()?;
        Ok(p)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let name = self.program.to_string_lossy().into_owned();
        let child = Command::new("sh")
            .args(["-c", WATCHDOG, "sh"])
            .arg(&self.program)
            .args(&self.args)
            .env("WATCH", std::process::id().to_string())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run sh for {name}: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Err(format!("{name} on port {} exited: {status}", self.port));
                }
            }
            if (self.ready)(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        Err(format!("{name} on port {} did not become ready", self.port))
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kill the server with SIGKILL (the watchdog does it, and reaps it, on SIGTERM; if the
    /// watchdog does not exit within 5 s its whole process group gets SIGKILL) and wait until
    /// the port is closed: for outage tests.
    pub fn kill(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
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
        while Instant::now() < deadline && port_open(self.port) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Start it again on the same port (after [`kill`](ServerProcess::kill)).
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.spawn()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

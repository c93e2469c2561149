//! A real MongoDB-wire server for tests (feature `testing`): [`MongoServer`] starts `nx-27017`
//! (a MongoDB wire-protocol server on SQLite, from PyPI) on a free loopback port with an
//! in-memory database, under the watchdog of [`steadycache_api::testing::server`].
//!
//! The program is `$STEADYCACHE_NX_27017`, else `.tools/nx-venv/bin/nx-27017` in the workspace
//! (where `scripts/test.sh` installs it), else `nx-27017` on the `PATH`. This is test support:
//! it panics with a clear message when the server cannot be started.

use std::ffi::OsString;
use std::path::PathBuf;
use steadycache_api::testing::server::{free_port, port_open, ServerProcess};

/// An `nx-27017` process on `127.0.0.1`.
#[derive(Debug)]
pub struct MongoServer {
    dir: PathBuf,
    process: ServerProcess,
}

fn program() -> OsString {
    if let Some(p) = std::env::var_os("STEADYCACHE_NX_27017").filter(|p| !p.is_empty()) {
        return p;
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/nx-venv/bin/nx-27017");
    if local.is_file() {
        return local.into_os_string();
    }
    "nx-27017".into()
}

impl MongoServer {
    /// Start a server with an empty in-memory database and wait until it accepts connections.
    pub fn start() -> MongoServer {
        let dir = std::env::temp_dir().join(format!(
            "steadycache-mongo-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        ));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        let program = program();
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port(0);
            let mut args: Vec<OsString> = [
                "--host",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "--db",
                "memory",
            ]
            .iter()
            .map(OsString::from)
            .collect();
            // Its default pid file is shared by every instance: always pass our own.
            args.push("--pid-file".into());
            args.push(dir.join(format!("nx-{port}.pid")).into_os_string());
            args.push("--log-file".into());
            args.push(dir.join(format!("nx-{port}.log")).into_os_string());
            match ServerProcess::start(program.clone(), args, port, port_open) {
                Ok(process) => return MongoServer { dir, process },
                Err(e) => last = e,
            }
        }
        panic!(
            "nx-27017 did not start ({last}); install it: python3 -m venv .tools/nx-venv && \
             .tools/nx-venv/bin/pip install nx-27017 (scripts/test.sh does)"
        );
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// `mongodb://127.0.0.1:<port>/steadycache?directConnection=true`.
    pub fn url(&self) -> String {
        format!(
            "mongodb://127.0.0.1:{}/steadycache?directConnection=true",
            self.port()
        )
    }

    /// Kill the server (SIGKILL) and wait until its port is closed: for outage tests.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Start it again on the same port (after [`kill`](MongoServer::kill)); its data is gone.
    pub fn restart(&mut self) {
        if let Err(e) = self.process.restart() {
            panic!("nx-27017 did not restart: {e}");
        }
    }
}

impl Drop for MongoServer {
    fn drop(&mut self) {
        self.process.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

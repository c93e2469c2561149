//! A real S3 server for tests (feature `testing`): [`S3Server`] starts `steadycache-s3-server`
//! (`tools/s3-server`: `s3s-fs`, an S3 server on a local directory from crates.io, with each
//! object's requests made atomic as on AWS S3) on a free loopback port with a fresh root
//! directory, under the watchdog of [`steadycache_api::testing::server`].
//! [`S3Server::start_racy`] starts it as plain `s3s-fs`, whose conditional writes race.
//!
//! The program is `$STEADYCACHE_S3_SERVER`, else `.tools/s3s/bin/steadycache-s3-server` in the
//! workspace (where `scripts/test.sh` installs it: `cargo install --path tools/s3-server
//! --locked --root .tools/s3s`), else `steadycache-s3-server` on the `PATH`. This is test
//! support: it panics with a clear message when the server cannot be started.

use crate::S3Config;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use steadycache_api::testing::server::{free_port, port_open, ServerProcess};

/// The access key id every test server accepts.
pub const ACCESS_KEY_ID: &str = "steadycache-test";
/// The secret access key every test server accepts.
pub const SECRET_ACCESS_KEY: &str = "steadycache-test-secret";

/// How long the backends made for the test server wait before confirming a conditional write
/// (see [`S3Backend`](crate::S3Backend#locks)). It matters only on a [racy](S3Server::start_racy)
/// server: plain `s3s-fs` checks `If-None-Match`/`If-Match` and then writes, with awaits
/// between, so two racing writers can both pass, and the read-back after this delay is what
/// tells them apart. It is a bound, not a proof: on a loaded machine (the process tests' dozen
/// clients on two busy cores) writes landed later than 250 ms after their check, and two
/// processes both took one lock. That is why the tests' server is atomic by default.
pub const CONFIRM_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

/// A `steadycache-s3-server` process on `127.0.0.1`, region `us-east-1`, path-style addressing.
#[derive(Debug)]
pub struct S3Server {
    root: PathBuf,
    process: ServerProcess,
}

fn program() -> OsString {
    if let Some(p) = std::env::var_os("STEADYCACHE_S3_SERVER").filter(|p| !p.is_empty()) {
        return p;
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../.tools/s3s/bin/steadycache-s3-server");
    if local.is_file() {
        return local.into_os_string();
    }
    "steadycache-s3-server".into()
}

impl S3Server {
    /// Start a server on a fresh, empty root directory and wait until it accepts connections.
    /// Requests on one object are atomic, as on AWS S3: of racing conditional writes exactly
    /// one passes, and a read sees a whole write.
    pub fn start() -> S3Server {
        Self::start_with(false)
    }

    /// Start plain `s3s-fs`: conditional writes are checked, then written, so racing writers
    /// can all pass, and a read may see one write's body with another's metadata. For the
    /// tests of how the backend copes with such a store.
    pub fn start_racy() -> S3Server {
        Self::start_with(true)
    }

    fn start_with(racy: bool) -> S3Server {
        let root = std::env::temp_dir().join(format!(
            "steadycache-s3-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        if let Err(e) = std::fs::create_dir_all(&root) {
            panic!("cannot create {}: {e}", root.display());
        }
        let program = program();
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port(0);
            let mut args: Vec<OsString> = vec![
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port.to_string().into(),
                "--access-key".into(),
                ACCESS_KEY_ID.into(),
                "--secret-key".into(),
                SECRET_ACCESS_KEY.into(),
                root.clone().into_os_string(),
            ];
            if racy {
                args.insert(0, "--racy".into());
            }
            match ServerProcess::start(program.clone(), args, port, port_open) {
                Ok(process) => return S3Server { root, process },
                Err(e) => last = e,
            }
        }
        panic!(
            "steadycache-s3-server did not start ({last}); install it: cargo install --path \
             tools/s3-server --locked --root .tools/s3s (scripts/test.sh does)"
        );
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// The directory the server stores buckets and objects in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// An `s3://` URL for `bucket` and `prefix` on this server (path style, `us-east-1`, the
    /// bucket created on first use, conditional writes confirmed after [`CONFIRM_DELAY`]).
    /// Credentials are not in it: give them to the config ([`config`](S3Server::config)) or
    /// through `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`.
    pub fn url(&self, bucket: &str, prefix: &str) -> String {
        format!(
            "s3://{bucket}/{prefix}?endpoint={}&region=us-east-1&path_style=true&create_bucket=true&confirm_delay_ms={}",
            self.endpoint(),
            CONFIRM_DELAY.as_millis()
        )
    }

    /// A config for `bucket` and `prefix` on this server with its credentials.
    pub fn config(&self, bucket: &str, prefix: &str) -> S3Config {
        S3Config::new(bucket)
            .with_prefix(prefix)
            .with_endpoint(self.endpoint())
            .with_region("us-east-1")
            .with_path_style(true)
            .with_create_bucket(true)
            .with_confirm_delay(CONFIRM_DELAY)
            .with_credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None)
    }

    /// Kill the server (SIGKILL) and wait until its port is closed: for outage tests. Its data
    /// stays on disk.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Start it again on the same port and root directory (after [`kill`](S3Server::kill)):
    /// the objects written before are there again.
    pub fn restart(&mut self) {
        if let Err(e) = self.process.restart() {
            panic!("steadycache-s3-server did not restart: {e}");
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.process.kill();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

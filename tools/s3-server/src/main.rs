//! `steadycache-s3-server`: the S3 server steadycache's tests run against. It is `s3s-fs` (an
//! S3 server on a local directory, from crates.io) with one change: requests on one object are
//! atomic, as on AWS S3.
//!
//! `s3s-fs` checks a `PutObject`'s `If-None-Match`/`If-Match` and then writes the object's
//! body, metadata and ETag as three files, with awaits between. Two racing conditional writers
//! can both pass the check, and a read can see one write's body with another's metadata. The
//! S3 backend copes with such stores only within a delay it is told (it reads a won write back
//! after `confirm_delay`), and on a loaded machine the processes tests ran past that delay: two
//! processes both created one lock and both computed. AWS S3 makes conditional writes atomic,
//! so by default this server does too: every request on an object holds that object's lock
//! while `s3s-fs` handles it (a read shares it, a write holds it alone); a listing shares the
//! whole store with them, and other requests on a bucket as a whole (creating it, deleting
//! many keys) hold the whole store alone. A request, once started, runs to its end even if its
//! client hangs up.
//!
//! What it does not change: `s3s-fs` ignores `If-Match` on `DeleteObject` (AWS S3 honours it),
//! which the backend copes with (see its docs); and locks are keyed by the request path as
//! sent, so two spellings of one key (`a%2Fb` and `a/b`) would get two locks (the AWS SDK
//! always spells a key one way).
//!
//! `--racy` turns that off: the store is plain `s3s-fs`, for the tests that measure how the
//! backend's read-back copes with a store whose conditional writes race.
//!
//! ```text
//! steadycache-s3-server [--racy] --host 127.0.0.1 --port 9000 \
//!     --access-key KEY --secret-key SECRET ROOT
//! ```

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{HttpError, HttpResponse};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::net::TcpListener;
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

/// The command line.
struct Opt {
    host: String,
    port: u16,
    access_key: Option<String>,
    secret_key: Option<String>,
    racy: bool,
    root: PathBuf,
}

const USAGE: &str = "usage: steadycache-s3-server [--racy] [--host H] [--port P] \
                     [--access-key K --secret-key S] ROOT";

fn parse(mut args: impl Iterator<Item = String>) -> Result<Opt, String> {
    let mut opt = Opt {
        host: "127.0.0.1".into(),
        port: 8014,
        access_key: None,
        secret_key: None,
        racy: false,
        root: PathBuf::new(),
    };
    let mut root = None;
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--racy" => opt.racy = true,
            "--host" => opt.host = value("--host")?,
            "--port" => {
                let p = value("--port")?;
                opt.port = p.parse().map_err(|_| format!("--port: `{p}` is no port"))?;
            }
            "--access-key" => opt.access_key = Some(value("--access-key")?),
            "--secret-key" => opt.secret_key = Some(value("--secret-key")?),
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s if root.is_none() => root = Some(PathBuf::from(s)),
            s => return Err(format!("unexpected argument {s}")),
        }
    }
    opt.root = root.ok_or("ROOT (the directory to store buckets in) is missing")?;
    if opt.access_key.is_some() != opt.secret_key.is_some() {
        return Err("--access-key and --secret-key go together".into());
    }
    Ok(opt)
}

fn main() -> ExitCode {
    let opt = match parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("steadycache-s3-server: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("steadycache-s3-server: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(opt)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("steadycache-s3-server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(opt: Opt) -> Result<(), String> {
    let fs = s3s_fs::FileSystem::new(&opt.root)
        .map_err(|e| format!("cannot serve {}: {e:?}", opt.root.display()))?;
    let mut builder = S3ServiceBuilder::new(fs);
    if let (Some(ak), Some(sk)) = (opt.access_key, opt.secret_key) {
        builder.set_auth(SimpleAuth::from_single(ak, sk));
    }
    let service = Atomic {
        inner: builder.build(),
        locks: Arc::new(Locks::default()),
        racy: opt.racy,
    };
    let listener = TcpListener::bind((opt.host.as_str(), opt.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", opt.host, opt.port))?;
    // HTTP/1.1 only (what the AWS SDK speaks over plain http): on one HTTP/2 connection a
    // stream waiting for an object's lock would hold back the stream that has it.
    let http = http1::Builder::new();
    loop {
        let socket = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors, say: pause rather than spin.
                eprintln!("steadycache-s3-server: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let conn = http.serve_connection(TokioIo::new(socket), service.clone());
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

/// The locks of the objects with requests in flight, under one lock for the whole store.
#[derive(Default)]
struct Locks {
    /// Held shared by every request on one object, alone by a request on a bucket as a whole.
    store: Arc<RwLock<()>>,
    /// One lock per object path (`/bucket/key`), dropped when no request holds or awaits it.
    objects: Mutex<HashMap<String, Arc<RwLock<()>>>>,
}

/// What a request holds while `s3s-fs` handles it: the store's lock (shared by object
/// requests and listings, alone for other bucket requests) and its object's.
#[derive(Default)]
struct Held {
    _store: Option<Guard>,
    object: Option<Guard>,
    /// The object's entry, forgotten on release if no other request holds or awaits it.
    entry: Option<(Arc<Locks>, String)>,
}

/// A held lock, shared or alone; released when dropped (never read).
enum Guard {
    Shared { _g: OwnedRwLockReadGuard<()> },
    Alone { _g: OwnedRwLockWriteGuard<()> },
}

impl Guard {
    async fn take(lock: Arc<RwLock<()>>, alone: bool) -> Guard {
        if alone {
            Guard::Alone {
                _g: lock.write_owned().await,
            }
        } else {
            Guard::Shared {
                _g: lock.read_owned().await,
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // Let go of the object first, so that the count below sees only the others.
        self.object = None;
        if let Some((locks, path)) = &self.entry {
            let mut map = locks.objects.lock().unwrap_or_else(PoisonError::into_inner);
            if map.get(path).is_some_and(|l| Arc::strong_count(l) == 1) {
                map.remove(path);
            }
        }
    }
}

impl Locks {
    async fn hold(self: &Arc<Self>, method: &Method, path: &str) -> Held {
        let writes = !matches!(*method, Method::GET | Method::HEAD);
        // `/bucket/key…` is an object; `/` and `/bucket` are the store or a bucket.
        let object = path
            .trim_start_matches('/')
            .split_once('/')
            .is_some_and(|(_, key)| !key.is_empty());
        if !object {
            // A listing shares the store with object requests (it sees each object whole);
            // creating a bucket or deleting many keys holds it alone.
            return Held {
                _store: Some(Guard::take(self.store.clone(), writes).await),
                object: None,
                entry: None,
            };
        }
        let store = Guard::take(self.store.clone(), false).await;
        let lock = {
            let mut map = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
            map.entry(path.to_owned()).or_default().clone()
        };
        Held {
            _store: Some(store),
            object: Some(Guard::take(lock, writes).await),
            entry: Some((self.clone(), path.to_owned())),
        }
    }
}

/// `s3s-fs`, one request per object at a time (unless `racy`).
#[derive(Clone)]
struct Atomic {
    inner: S3Service,
    locks: Arc<Locks>,
    racy: bool,
}

type Answer = Result<HttpResponse, HttpError>;

impl Service<Request<Incoming>> for Atomic {
    type Response = HttpResponse;
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        // Each request runs to its end in a task of its own: a client that hangs up (a timeout)
        // drops only the wait for the answer, never `s3s-fs` halfway through a write, which
        // would leave an object with the new body and the old metadata.
        let handled = tokio::spawn(async move {
            let held = if this.racy {
                Held::default()
            } else {
                this.locks.hold(req.method(), req.uri().path()).await
            };
            let answer = this.inner.call(req.map(s3s::Body::from)).await;
            drop(held);
            answer
        });
        Box::pin(async move {
            match handled.await {
                Ok(answer) => answer,
                Err(e) => Err(HttpError::new(Box::new(e))),
            }
        })
    }
}

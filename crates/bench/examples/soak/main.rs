//! The soak run of `scripts/soak.sh` (issue 24, item 3): `examples/web_service.rs` (mode
//! `swr`, an L1 over Redis kept coherent by the bus) under a fixed rate of requests for
//! minutes, with its Redis behind the test fault proxy and a fault every few minutes.
//!
//! ```sh
//! cargo run -p steadycache-bench --example soak -- --service target/release/examples/web_service \
//!     --minutes 20 --out target/soak
//! ```
//!
//! * Load: `--rate` requests a second (open loop: a request is sent on each tick whether or not
//!   the earlier ones have answered, at most 512 in flight), `GET /forecast/city-<n>` over
//!   `--cities` keys. The upstream is deterministic, so every body is checked: a 200 whose city
//!   or temperature is not the upstream's answer for the requested city is a **wrong answer**.
//! * Faults, in turn, every `--fault-every` seconds (default 120; 12 with `--minutes 1`): a
//!   latency burst (200 ms ± 100 ms each way for 20 s), a black hole (10 s: nothing forwarded,
//!   nothing closed), a Redis restart (killed, back 2 s later with no data), every connection
//!   to Redis reset (the bus's subscription with them). Each has a recovery bound: within
//!   [`RECOVERY`] of its end, a whole second with every request answered 200.
//! * Per minute: throughput, p50/p99/max latency, upstream calls, errors, wrong answers, and the
//!   service process's RSS, open file descriptors and live tokio tasks (from its `/stats`).
//! * Verdict: no wrong answer; every fault recovered within its bound; and, on a run of 6
//!   minutes or more, RSS, fds and tasks flat over the last half (the mean of its last quarter
//!   at most a noise margin above the mean of the quarter before it).
//!
//! Writes `soak.json`, `soak.md` (the table and the verdict) and `soak.svg` (RSS and p99 over
//! time) into `--out`; exits 1 when the verdict fails.

mod faults;
mod load;
mod report;

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use steadycache_api::testing::proxy::FaultProxy;
use steadycache_redis::testing::RedisServer;

/// How soon after a fault ends the service must answer every request again.
pub const RECOVERY: Duration = Duration::from_secs(10);

/// The command line.
pub struct Args {
    minutes: u64,
    rate: u64,
    cities: u64,
    fault_every: Duration,
    service: PathBuf,
    out: PathBuf,
}

fn args() -> Result<Args, String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| {
        argv.iter()
            .position(|a| a == name)
            .and_then(|i| argv.get(i + 1).cloned())
    };
    let num = |name: &str, default: u64| -> Result<u64, String> {
        get(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| format!("{name} takes a number, not {v}"))
        })
    };
    let minutes = num("--minutes", 20)?.max(1);
    let fault_default = if minutes < 4 { 12 } else { 120 };
    Ok(Args {
        minutes,
        rate: num("--rate", 200)?.clamp(1, 100_000),
        cities: num("--cities", 50)?.max(1),
        fault_every: Duration::from_secs(num("--fault-every", fault_default)?.max(5)),
        service: get("--service")
            .map(PathBuf::from)
            .ok_or("--service <path of the web_service example> is required")?,
        out: PathBuf::from(get("--out").unwrap_or_else(|| "target/soak".into())),
    })
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// The service, its Redis URL through the proxy, with an L1 (so the bus is in play).
fn start_service(args: &Args, port: u16, redis_port: u16) -> std::io::Result<Child> {
    Command::new(&args.service)
        .args(["--mode", "swr", "--port", &port.to_string(), "--redis"])
        .arg(format!("redis://127.0.0.1:{redis_port}/0?local=64mb"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<bool, String> {
    let args = args()?;
    let mut redis = RedisServer::start();
    let proxy = FaultProxy::start(redis.port()).map_err(|e| format!("fault proxy: {e}"))?;
    let port = free_port().map_err(|e| e.to_string())?;
    let mut service = start_service(&args, port, proxy.port())
        .map_err(|e| format!("cannot start {}: {e}", args.service.display()))?;
    let pid = service.id();
    let result = drive(&args, port, pid, &mut redis, &proxy).await;
    let _ = service.kill();
    let _ = service.wait();
    let run = result?;
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    let verdict = report::write(&args, &run, &args.out).map_err(|e| e.to_string())?;
    Ok(verdict)
}

/// What a run recorded.
pub struct Run {
    /// Per minute.
    pub minutes: Vec<report::Minute>,
    /// Each fault and when the service answered in full again.
    pub faults: Vec<faults::Outcome>,
    /// Requests sent, over the whole run.
    pub sent: u64,
    /// Per second: right answers, errors, wrong answers.
    pub seconds: Vec<[u64; 3]>,
}

async fn drive(
    args: &Args,
    port: u16,
    pid: u32,
    redis: &mut RedisServer,
    proxy: &FaultProxy,
) -> Result<Run, String> {
    let base = format!("http://127.0.0.1:{port}");
    load::wait_ready(&base).await?;
    let began = Instant::now();
    let end = began + Duration::from_secs(args.minutes * 60);
    let seconds = Arc::new(load::Seconds::new(began, args.minutes * 60 + 30));
    let driver = tokio::spawn(load::drive(
        base.clone(),
        args.rate,
        args.cities,
        end,
        seconds.clone(),
    ));
    let mut sampler = report::Sampler::new(&base, pid);
    let mut schedule = faults::Schedule::new(began, args.fault_every, end);
    let mut minutes = Vec::new();
    let mut next_minute = began + Duration::from_secs(60);
    while Instant::now() < end {
        let wake = schedule.next_at().min(next_minute).min(end);
        tokio::time::sleep_until(wake.into()).await;
        if Instant::now() >= next_minute {
            minutes.push(sampler.minute(minutes.len() as u64 + 1, &seconds).await);
            next_minute += Duration::from_secs(60);
        }
        schedule.step(redis, proxy).await;
    }
    let sent = driver.await.map_err(|e| e.to_string())?;
    if minutes.len() < args.minutes as usize {
        minutes.push(sampler.minute(minutes.len() as u64 + 1, &seconds).await);
    }
    let faults = schedule.outcomes(&seconds);
    let per_second = seconds
        .range(0, (args.minutes * 60) as usize)
        .iter()
        .map(|s| [s.ok, s.errors, s.wrong])
        .collect();
    Ok(Run {
        minutes,
        faults,
        sent,
        seconds: per_second,
    })
}

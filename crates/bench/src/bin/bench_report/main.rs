//! `bench-report`: turns a run of the benches (criterion's `target/criterion`) and of
//! `scripts/load.sh --out` into `docs/benchmarks.md` and its SVG plots: the same-run ratios
//! against the peers, every measurement, the web service under load, and the machine.
//!
//! ```sh
//! cargo run --release -p steadycache-bench --bin bench-report -- \
//!     --criterion target/criterion --load target/load.json --out docs/benchmarks.md
//! ```
//! `scripts/bench-report.sh` runs the benches, the load and this.

mod charts;
mod machine;

use charts::{bars_log, Bar};
use serde_json::Value;
use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One benchmark's figures, in nanoseconds per iteration.
struct Measure {
    median: f64,
    mean: f64,
}

/// `(group, function)` → figures.
type Measures = BTreeMap<(String, String), Measure>;

/// The comparisons the report leads with: (group, ours, peer, what is compared).
const PAIRS: &[(&str, &str, &str, &str)] = &[
    (
        "hit_sync",
        "steadycache_ttl",
        "cached_sized_ttl",
        "memory hit (sync, ttl) vs `cached` `TimedSizedCache`",
    ),
    (
        "hit_sync",
        "steadycache_ttl",
        "cached_sized",
        "memory hit (sync, ttl) vs `cached` `SizedCache` (no ttl)",
    ),
    (
        "hit_sync",
        "steadycache_ttl",
        "raw_quick_cache",
        "memory hit (sync, ttl) vs a raw `quick_cache` get",
    ),
    (
        "hit_sync",
        "steadycache_ttl",
        "raw_moka",
        "memory hit (sync, ttl) vs a raw `moka` get",
    ),
    (
        "hit_async",
        "steadycache_ttl",
        "cached_sized_ttl",
        "memory hit (async, ttl) vs `cached` async `TimedSizedCache`",
    ),
    (
        "hit_2threads",
        "steadycache_ttl",
        "cached_concurrent_ttl",
        "memory hit on 2 threads vs `cached` concurrent ttl store",
    ),
    (
        "hit_2threads",
        "steadycache_ttl",
        "raw_moka",
        "memory hit on 2 threads vs a raw `moka` get",
    ),
    (
        "redis_hit_seq",
        "steadycache",
        "raw_get",
        "Redis hit vs a raw redis-rs `GET`",
    ),
    (
        "redis_hit_seq",
        "steadycache",
        "cached_async_redis",
        "Redis hit vs `cached`'s `AsyncRedisCache`",
    ),
    (
        "redis_hit_64_tasks",
        "steadycache",
        "raw_get",
        "Redis hits by 64 tasks vs raw `GET`s",
    ),
    (
        "mongo_hit_seq",
        "steadycache",
        "raw_find_one",
        "MongoDB hit vs a raw driver `find_one`",
    ),
    (
        "s3_hit_seq",
        "steadycache",
        "raw_get_object",
        "S3 hit vs a raw SDK `get_object`",
    ),
    (
        "s3_round_trip_5mb",
        "steadycache",
        "raw_sdk",
        "S3 5 MB round trip vs the raw SDK",
    ),
];

/// The hit-latency plot: (backend, group, ours, peer).
const BY_BACKEND: &[(&str, &str, &str, Option<&str>)] = &[
    (
        "memory",
        "hit_sync",
        "steadycache_ttl",
        Some("cached_sized_ttl"),
    ),
    ("file", "disk_hit_sync_1k", "file", None),
    ("SQLite", "disk_hit_sync_1k", "sqlite", None),
    ("Redis", "redis_hit_seq", "steadycache", Some("raw_get")),
    (
        "MongoDB",
        "mongo_hit_seq",
        "steadycache",
        Some("raw_find_one"),
    ),
    ("S3", "s3_hit_seq", "steadycache", Some("raw_get_object")),
];

struct Args {
    criterion: PathBuf,
    load: Option<PathBuf>,
    out: PathBuf,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        criterion: PathBuf::from("target/criterion"),
        load: None,
        out: PathBuf::from("docs/benchmarks.md"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--criterion" => a.criterion = value.into(),
            "--load" => a.load = Some(value.into()),
            "--out" => a.out = value.into(),
            other => {
                return Err(format!(
                    "unknown option {other} (--criterion, --load, --out)"
                ))
            }
        }
    }
    Ok(a)
}

/// Every benchmark under criterion's directory (`<group>/<function>/new/`).
fn read_criterion(dir: &Path, out: &mut Measures) -> Result<(), Box<dyn Error>> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            let bench: Value =
                serde_json::from_str(&std::fs::read_to_string(path.join("benchmark.json"))?)?;
            let est: Value =
                serde_json::from_str(&std::fs::read_to_string(path.join("estimates.json"))?)?;
            let group = bench["group_id"].as_str().unwrap_or_default().to_owned();
            let function = bench["function_id"].as_str().unwrap_or_default().to_owned();
            let point = |k: &str| est[k]["point_estimate"].as_f64().unwrap_or(f64::NAN);
            out.insert(
                (group, function),
                Measure {
                    median: point("median"),
                    mean: point("mean"),
                },
            );
        } else if path.file_name().is_some_and(|n| n != "report") {
            read_criterion(&path, out)?;
        }
    }
    Ok(())
}

/// A time for people, from nanoseconds.
fn time(ns: f64) -> String {
    match ns {
        n if n < 1e3 => format!("{n:.1} ns"),
        n if n < 1e6 => format!("{:.2} µs", n / 1e3),
        n if n < 1e9 => format!("{:.2} ms", n / 1e6),
        n => format!("{:.2} s", n / 1e9),
    }
}

fn median(m: &Measures, group: &str, function: &str) -> Option<f64> {
    m.get(&(group.to_owned(), function.to_owned()))
        .map(|x| x.median)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("bench-report: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let a = args()?;
    let mut m = Measures::new();
    read_criterion(&a.criterion, &mut m)
        .map_err(|e| format!("read {}: {e}", a.criterion.display()))?;
    if m.is_empty() {
        return Err(format!("no benchmark under {}", a.criterion.display()).into());
    }
    let load: Option<Value> = match &a.load {
        Some(p) => Some(serde_json::from_str(&std::fs::read_to_string(p)?)?),
        None => None,
    };
    let dir = a.out.parent().unwrap_or(Path::new(".")).to_path_buf();
    std::fs::create_dir_all(&dir)?;
    let mut doc = String::new();
    let _ = writeln!(doc, "# Benchmarks\n");
    let _ = writeln!(
        doc,
        "Written by `scripts/bench-report.sh` (the benches in `crates/bench`, then \
         `scripts/load.sh`, then `bench-report`); every ratio compares two measurements of the \
         same run on the same machine. Times are criterion's medians per operation; a ratio \
         below 1 means steadycache took less time than the peer.\n"
    );
    let _ = writeln!(doc, "## The machine\n\n{}\n", machine::describe());

    // The same-run ratios.
    let _ = writeln!(doc, "## Against the peers\n");
    let _ = writeln!(
        doc,
        "| comparison | steadycache | peer | ratio |\n|---|---|---|---|"
    );
    for (group, ours, peer, what) in PAIRS {
        if let (Some(o), Some(p)) = (median(&m, group, ours), median(&m, group, peer)) {
            let _ = writeln!(
                doc,
                "| {what} | {} | {} | {:.2}× |",
                time(o),
                time(p),
                o / p
            );
        }
    }

    hit_latency_plot(&mut doc, &dir, &m)?;

    if let Some(load) = &load {
        load_section(&mut doc, &dir, load)?;
    }

    // Everything measured.
    let _ = writeln!(
        doc,
        "## Every measurement\n\n| group | function | median | mean |\n|---|---|---|---|"
    );
    for ((group, function), x) in &m {
        let _ = writeln!(
            doc,
            "| {group} | {function} | {} | {} |",
            time(x.median),
            time(x.mean)
        );
    }
    std::fs::write(&a.out, doc)?;
    eprintln!("bench-report: wrote {}", a.out.display());
    Ok(())
}

/// The hit latency by backend: a log-scale bar plot beside the document.
fn hit_latency_plot(doc: &mut String, dir: &Path, m: &Measures) -> Result<(), Box<dyn Error>> {
    let mut bars = Vec::new();
    for (backend, group, ours, peer) in BY_BACKEND {
        if let Some(o) = median(m, group, ours) {
            bars.push(Bar {
                label: format!("{backend}: steadycache"),
                value: o,
                series: 0,
            });
        }
        if let Some(p) = peer.and_then(|p| median(m, group, p)) {
            bars.push(Bar {
                label: format!("{backend}: {}", peer.unwrap_or_default()),
                value: p,
                series: 1,
            });
        }
    }
    if !bars.is_empty() {
        bars_log(
            &dir.join("hit_latency.svg"),
            "Hit latency by backend (median, log scale)",
            "time per hit",
            &time,
            &bars,
            &["steadycache", "peer"],
        )?;
        let _ = writeln!(doc, "\n![Hit latency by backend](hit_latency.svg)\n");
    }
    Ok(())
}

/// The web service under load: the table `scripts/load.sh` printed, and its plot.
fn load_section(doc: &mut String, dir: &Path, load: &Value) -> Result<(), Box<dyn Error>> {
    let _ = writeln!(
        doc,
        "## A web service under load\n\n`examples/web_service.rs` (axum) in front of an upstream \
         that takes {} ms a call and admits {} calls a second, cached on Redis with a \
         distributed lock; `oha` at {} requests/s for {} per mode, over {} keys, on loopback.\n",
        load["upstream_ms"],
        load["upstream_rate"],
        load["rate"].as_f64().unwrap_or(0.0).round(),
        load["duration"].as_str().unwrap_or("?"),
        load["keys"]
    );
    let _ = writeln!(doc, "| mode | p50 | p99 | answered 200 | throughput (200/s) | upstream calls (refused) |\n|---|---|---|---|---|---|");
    let mut bars = Vec::new();
    for r in load["modes"].as_array().cloned().unwrap_or_default() {
        let name = r["name"].as_str().unwrap_or("?").to_owned();
        let (p50, p99) = (r["p50_ms"].as_f64(), r["p99_ms"].as_f64());
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2} ms"));
        let _ = writeln!(
            doc,
            "| {name} | {} | {} | {:.1} % | {:.0} | {} ({}) |",
            ms(p50),
            ms(p99),
            100.0 * r["ok_ratio"].as_f64().unwrap_or(0.0),
            r["throughput_ok_per_s"].as_f64().unwrap_or(0.0),
            r["upstream_calls"],
            r["upstream_refused"]
        );
        let label = name.replace('`', "");
        for (series, v) in [(0, p50), (1, p99)] {
            if let Some(v) = v {
                let which = if series == 0 { "p50" } else { "p99" };
                bars.push(Bar {
                    label: format!("{label}: {which}"),
                    value: v,
                    series,
                });
            }
        }
    }
    bars_log(
        &dir.join("load_latency.svg"),
        "Latency under load (log scale)",
        "latency",
        &|ms| time(ms * 1e6),
        &bars,
        &["p50", "p99"],
    )?;
    let _ = writeln!(doc, "\n![Latency under load](load_latency.svg)\n");
    Ok(())
}

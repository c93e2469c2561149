//! Per-minute rows, the verdict, and the files: `soak.json`, `soak.md`, `soak.svg`.

use super::faults::Outcome;
use super::load::{self, Http, Seconds};
use super::{Args, Run, RECOVERY};
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// One minute of the run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Minute {
    pub minute: u64,
    /// Right answers a second.
    pub throughput: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Calls the service made to its upstream in the minute.
    pub upstream_calls: u64,
    pub errors: u64,
    pub wrong: u64,
    pub rss_mib: f64,
    pub fds: u64,
    pub tasks: u64,
}

/// Reads the service's `/stats` and `/proc` once a minute.
pub struct Sampler {
    http: Http,
    stats_url: String,
    pid: u32,
    upstream_before: u64,
}

impl Sampler {
    pub fn new(base: &str, pid: u32) -> Sampler {
        Sampler {
            http: load::client(),
            stats_url: format!("{base}/stats"),
            pid,
            upstream_before: 0,
        }
    }

    /// The row of minute `n` (seconds `60(n-1)..60n`).
    pub async fn minute(&mut self, n: u64, seconds: &Seconds) -> Minute {
        let from = (n as usize - 1) * 60;
        let secs = seconds.range(from, from + 60);
        let mut lat: Vec<u32> = secs.iter().flat_map(|s| s.latencies_us.clone()).collect();
        lat.sort_unstable();
        let at = |q: f64| {
            lat.get(((lat.len() as f64 - 1.0) * q).round() as usize)
                .map_or(0.0, |&us| f64::from(us) / 1000.0)
        };
        let stats = load::get_json(&self.http, &self.stats_url).await;
        let field = |name: &str| stats.as_ref().and_then(|s| s[name].as_u64()).unwrap_or(0);
        let upstream = field("upstream_calls");
        let row = Minute {
            minute: n,
            throughput: secs.iter().map(|s| s.ok).sum::<u64>() as f64 / 60.0,
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: at(1.0),
            upstream_calls: upstream.saturating_sub(self.upstream_before),
            errors: secs.iter().map(|s| s.errors).sum(),
            wrong: secs.iter().map(|s| s.wrong).sum(),
            rss_mib: rss_kib(self.pid) as f64 / 1024.0,
            fds: fds(self.pid),
            tasks: field("tasks"),
        };
        self.upstream_before = upstream;
        eprintln!("soak: {row:?}");
        row
    }
}

/// VmRSS of `pid`, KiB (0 if unreadable).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Open file descriptors of `pid`.
fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

/// Whether a series stayed flat over the last half of the run: the mean of its last quarter at
/// most `margin(mean before)` above the mean of the quarter before it. The two means, and the
/// answer.
fn flat(values: &[f64], margin: impl Fn(f64) -> f64) -> (f64, f64, bool) {
    let n = values.len();
    let (q3, q4) = (&values[n / 2..n * 3 / 4], &values[n * 3 / 4..]);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (before, after) = (mean(q3), mean(q4));
    (before, after, after <= before + margin(before))
}

/// The verdict's lines, and whether it passed.
fn verdict(run: &Run) -> (Vec<String>, bool) {
    let mut lines = Vec::new();
    let wrong: u64 = run.minutes.iter().map(|m| m.wrong).sum();
    let mut pass = wrong == 0;
    lines.push(format!("wrong answers: {wrong} (must be 0)"));
    for f in &run.faults {
        let ok = f.recovered_after_s.is_some();
        pass &= ok;
        lines.push(format!(
            "{}: at {} s, ended {} s, {} ({} failed requests)",
            f.fault.name(),
            f.began_s,
            f.ended_s,
            f.recovered_after_s.map_or(
                format!("NOT recovered within {} s", RECOVERY.as_secs()),
                |s| format!("every request answered again {s} s after its end"),
            ),
            f.errors
        ));
    }
    if run.minutes.len() < 6 {
        lines.push("RSS, fds, tasks: run too short to judge growth (6 minutes or more)".into());
        return (lines, pass);
    }
    let series = |f: fn(&Minute) -> f64| run.minutes.iter().map(f).collect::<Vec<_>>();
    let checks = [
        (
            "RSS (MiB)",
            flat(&series(|m| m.rss_mib), |b| (b * 0.05).max(8.0)),
        ),
        // The driver's idle keep-alive connections come and go with the load: each is an fd.
        (
            "open fds",
            flat(&series(|m| m.fds as f64), |_| {
                5.0 + load::IDLE_CONNECTIONS as f64
            }),
        ),
        (
            "tasks",
            flat(&series(|m| m.tasks as f64), |b| (b * 0.2).max(32.0)),
        ),
    ];
    for (name, (before, after, ok)) in checks {
        pass &= ok;
        lines.push(format!(
            "{name}: mean {before:.1} in the third quarter, {after:.1} in the last: {}",
            if ok { "flat" } else { "GROWING" }
        ));
    }
    (lines, pass)
}

/// Write `soak.json`, `soak.md` and `soak.svg` into `out`; whether the run passed.
pub fn write(args: &Args, run: &Run, out: &Path) -> std::io::Result<bool> {
    let (lines, pass) = verdict(run);
    let faults: Vec<_> = run.faults.iter().map(fault_json).collect();
    let json = serde_json::json!({
        "minutes": run.minutes, "faults": faults, "requests": run.sent, "rate": args.rate,
        "cities": args.cities, "verdict": lines, "pass": pass, "machine": machine(),
        "seconds_ok_errors_wrong": run.seconds,
    });
    std::fs::write(out.join("soak.json"), format!("{json:#}\n"))?;
    std::fs::write(out.join("soak.md"), markdown(args, run, &lines, pass))?;
    plot(&run.minutes, &out.join("soak.svg")).map_err(std::io::Error::other)?;
    print!("{}", markdown(args, run, &lines, pass));
    Ok(pass)
}

fn fault_json(f: &Outcome) -> serde_json::Value {
    serde_json::json!({
        "fault": f.fault.name(), "began_s": f.began_s, "ended_s": f.ended_s,
        "recovered_after_s": f.recovered_after_s, "errors": f.errors,
    })
}

/// The machine, as `/proc` tells it.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores ({cpu})")
}

fn markdown(args: &Args, run: &Run, lines: &[String], pass: bool) -> String {
    let mut md = format!(
        "{} minutes of `examples/web_service.rs` (mode swr, an L1 over Redis behind the fault \
         proxy) at {} requests/s over {} keys, {} requests in all, on {}; a fault every {} s.\n\n\
         | minute | right answers/s | p50 ms | p99 ms | max ms | upstream calls | errors | wrong | RSS MiB | fds | tasks |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        args.minutes,
        args.rate,
        args.cities,
        run.sent,
        machine(),
        args.fault_every.as_secs()
    );
    for m in &run.minutes {
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.2} | {:.1} | {:.0} | {} | {} | {} | {:.1} | {} | {} |",
            m.minute,
            m.throughput,
            m.p50_ms,
            m.p99_ms,
            m.max_ms,
            m.upstream_calls,
            m.errors,
            m.wrong,
            m.rss_mib,
            m.fds,
            m.tasks
        );
    }
    let _ = writeln!(
        md,
        "\nVerdict: **{}**\n",
        if pass { "pass" } else { "FAIL" }
    );
    for l in lines {
        let _ = writeln!(md, "- {l}");
    }
    md
}

/// RSS (MiB, left axis) and p99 (ms, right axis) per minute.
fn plot(minutes: &[Minute], path: &Path) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let root = SVGBackend::new(path, (800, 360)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let n = minutes.len().max(2) as u64;
    let rss_top = minutes.iter().map(|m| m.rss_mib).fold(1.0, f64::max) * 1.2;
    let p99_top = minutes.iter().map(|m| m.p99_ms).fold(1.0, f64::max) * 1.2;
    let mut chart = ChartBuilder::on(&root)
        .caption("soak: RSS and p99 per minute", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .right_y_label_area_size(50)
        .build_cartesian_2d(1u64..n, 0f64..rss_top)
        .map_err(|e| err(&e))?
        .set_secondary_coord(1u64..n, 0f64..p99_top);
    chart
        .configure_mesh()
        .x_desc("minute")
        .y_desc("RSS (MiB)")
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .configure_secondary_axes()
        .y_desc("p99 (ms)")
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(
            minutes.iter().map(|m| (m.minute, m.rss_mib)),
            &BLUE,
        ))
        .map_err(|e| err(&e))?
        .label("RSS (MiB)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE));
    chart
        .draw_secondary_series(LineSeries::new(
            minutes.iter().map(|m| (m.minute, m.p99_ms)),
            &RED,
        ))
        .map_err(|e| err(&e))?
        .label("p99 (ms)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RED));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

//! The scripted faults: one every `fault_every`, in turn, each ended (healed) on time, and how
//! soon after its end the service answered every request again.

use super::load::Seconds;
use super::RECOVERY;
use std::time::{Duration, Instant};
use steadycache_api::testing::proxy::FaultProxy;
use steadycache_redis::testing::RedisServer;

/// The faults, in the order they are played.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// 200 ms ± 100 ms each way on the link to Redis, for 20 s.
    LatencyBurst,
    /// Nothing forwarded, nothing closed, for 10 s.
    BlackHole,
    /// Redis killed, and started again (empty) 2 s later.
    RedisRestart,
    /// Every connection to Redis reset at once (the bus's subscription among them).
    ResetAll,
}

impl Fault {
    const ALL: [Fault; 4] = [
        Fault::LatencyBurst,
        Fault::BlackHole,
        Fault::RedisRestart,
        Fault::ResetAll,
    ];

    /// How long it lasts; in a `short` run (a few minutes: CI's), 5 s at most, so that more
    /// than one fault fits.
    fn lasts(self, short: bool) -> Duration {
        let d = match self {
            Fault::LatencyBurst => Duration::from_secs(20),
            Fault::BlackHole => Duration::from_secs(10),
            Fault::RedisRestart => Duration::from_secs(2),
            Fault::ResetAll => Duration::ZERO,
        };
        if short {
            d.min(Duration::from_secs(5))
        } else {
            d
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Fault::LatencyBurst => "latency 200±100 ms",
            Fault::BlackHole => "black hole",
            Fault::RedisRestart => "Redis restart (down 2 s, data lost)",
            Fault::ResetAll => "every Redis connection reset",
        }
    }
}

/// One fault played.
pub struct Outcome {
    pub fault: Fault,
    /// Seconds since the start when it began and ended.
    pub began_s: u64,
    pub ended_s: u64,
    /// Seconds from its end to the first second with every request answered 200 (`None`: not
    /// within [`RECOVERY`]).
    pub recovered_after_s: Option<u64>,
    /// Requests that failed (not 200) between its start and its recovery.
    pub errors: u64,
}

/// What is due and when.
pub struct Schedule {
    began: Instant,
    every: Duration,
    end: Instant,
    next: usize,
    /// Faults last 5 s at most (a run of a few minutes).
    short: bool,
    /// The fault in force and when it ends.
    active: Option<(Fault, Instant)>,
    /// When the last fault ended: the next waits out its recovery window, so that each fault's
    /// errors and recovery are its own.
    quiet_from: Instant,
    played: Vec<(Fault, Instant, Instant)>,
}

impl Schedule {
    pub fn new(began: Instant, every: Duration, end: Instant) -> Schedule {
        Schedule {
            began,
            every,
            end,
            next: 0,
            short: end.duration_since(began) < Duration::from_secs(240),
            active: None,
            quiet_from: began,
            played: Vec::new(),
        }
    }

    fn start_of(&self, n: usize) -> Instant {
        (self.began + self.every * (n as u32 + 1)).max(self.quiet_from)
    }

    /// When something is due next (far in the future when nothing is).
    pub fn next_at(&self) -> Instant {
        match self.active {
            Some((_, until)) => until,
            None => self.start_of(self.next),
        }
    }

    /// Start or end whatever is due. A fault is started only if it and its recovery fit
    /// before the end of the run.
    pub async fn step(&mut self, redis: &mut RedisServer, proxy: &FaultProxy) {
        let now = Instant::now();
        if let Some((fault, until)) = self.active {
            if now >= until {
                heal(fault, redis, proxy).await;
                self.played
                    .push((fault, until - fault.lasts(self.short), now));
                self.active = None;
                self.quiet_from = now + RECOVERY + Duration::from_secs(2);
            }
            return;
        }
        let fault = Fault::ALL[self.next % Fault::ALL.len()];
        if now < self.start_of(self.next) {
            return;
        }
        self.next += 1;
        let lasts = fault.lasts(self.short);
        if now + lasts + RECOVERY + Duration::from_secs(2) > self.end {
            return;
        }
        eprintln!(
            "soak: {:>5} s: {} for {} s",
            now.duration_since(self.began).as_secs(),
            fault.name(),
            lasts.as_secs()
        );
        inflict(fault, redis, proxy).await;
        self.active = Some((fault, now + lasts));
    }

    /// Each fault played, with its recovery read off the per-second records.
    pub fn outcomes(&self, seconds: &Seconds) -> Vec<Outcome> {
        self.played
            .iter()
            .map(|&(fault, from, to)| {
                let (b, e) = (seconds.index(from), seconds.index(to));
                let after = seconds.range(e + 1, e + 1 + RECOVERY.as_secs() as usize);
                let recovered = after
                    .iter()
                    .position(|s| s.errors == 0 && s.wrong == 0 && s.ok > 0)
                    .map(|i| i as u64 + 1);
                let upto = e + 1 + recovered.unwrap_or(RECOVERY.as_secs()) as usize;
                let errors = seconds.range(b, upto).iter().map(|s| s.errors).sum();
                Outcome {
                    fault,
                    began_s: b as u64,
                    ended_s: e as u64,
                    recovered_after_s: recovered,
                    errors,
                }
            })
            .collect()
    }
}

async fn inflict(fault: Fault, redis: &mut RedisServer, proxy: &FaultProxy) {
    match fault {
        Fault::LatencyBurst => {
            proxy.latency(Duration::from_millis(200), Duration::from_millis(100))
        }
        Fault::BlackHole => proxy.black_hole(),
        Fault::RedisRestart => tokio::task::block_in_place(|| redis.kill()),
        Fault::ResetAll => proxy.reset_all(),
    }
}

async fn heal(fault: Fault, redis: &mut RedisServer, proxy: &FaultProxy) {
    match fault {
        Fault::RedisRestart => tokio::task::block_in_place(|| redis.restart()),
        _ => proxy.heal(),
    }
}

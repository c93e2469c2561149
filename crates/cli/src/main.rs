//! `steadycache`: look into, and clear, any steadycache store from the command line.
//!
//! ```text
//! steadycache --url <URL> [--json] [--timeout 10s] <command>
//!   ls [PREFIX]     namespaces (no prefix) or the keys under PREFIX: size, age, state; paged
//!   inspect KEY     the envelope's header and its payload (pretty JSON, or a hex preview)
//!   get KEY         the raw payload, to stdout
//!   rm KEY          remove one key
//!   clear PREFIX    remove every key under PREFIX (asks first, unless --yes)
//!   stats           entries and bytes per namespace
//!   ping            whether the store answers, and how fast
//! ```
//!
//! The URL is any URL `Cache::from_url` opens (`file://`, `sqlite://`, `redis://`,
//! `rediss://`, `mongodb://`, `s3://`), also read from `STEADYCACHE_URL` (which keeps a
//! password out of the shell's history). It is only ever printed redacted, and so are the
//! secrets it holds wherever an error quotes them. See [`EXIT_CODES`] for the exit codes.

#![deny(missing_docs)]

mod describe;
mod keys;
mod output;
mod run;

use clap::{error::ErrorKind, Parser, Subcommand};
use output::Failure;
use std::process::ExitCode;
use std::time::Duration;

/// The exit codes, as `--help` prints them.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  the store failed or could not be opened (one line on stderr says why)
  2  bad usage: an unknown command or option, a malformed URL or Redis cursor
  3  no such key (inspect, get, rm), or for get an entry a read would miss (corrupt, misplaced)
  4  clear not confirmed (answered no, or no terminal to ask and no --yes)";

/// Look into, and clear, any steadycache store.
#[derive(Debug, Parser)]
#[command(name = "steadycache", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// The store's URL, as `Cache::from_url` takes it
    #[arg(long, env = "STEADYCACHE_URL", global = true, hide_env_values = true)]
    pub url: Option<String>,
    /// Print one JSON document (errors: a JSON object on stderr)
    #[arg(long, global = true)]
    pub json: bool,
    /// How long one operation on the store may take
    #[arg(long, global = true, default_value = "10s", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// What to do
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Namespaces with their entry counts, or (with a PREFIX) the keys under it with their
    /// size, age and state, a page at a time
    Ls {
        /// A key prefix, such as `app.users:` (a namespace and its colon)
        prefix: Option<String>,
        /// Keys per page (1 to 10000)
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=10_000))]
        limit: u16,
        /// Where the page starts: the `next` cursor the previous page printed (a malformed
        /// Redis cursor is a usage error)
        #[arg(long)]
        cursor: Option<String>,
        /// Include the engine's internal keys (locks, tag times, markers: keys with `#`)
        #[arg(long)]
        all: bool,
    },
    /// The envelope of one entry: codec, format version, times, flags, size, and its payload
    Inspect {
        /// The key
        key: String,
    },
    /// The raw payload of one entry, to stdout (a signed entry's tag removed, not checked: the
    /// CLI has no signing key); a corrupt or misplaced entry is no value (exit 3)
    Get {
        /// The key
        key: String,
    },
    /// Remove one key
    Rm {
        /// The key
        key: String,
    },
    /// Remove every key under PREFIX; `""` removes every key the URL reaches (on Redis
    /// without `key_prefix`, the whole database, as `Cache::clear` does)
    Clear {
        /// The key prefix
        prefix: String,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
    },
    /// Entries and bytes per namespace (reads every key; the values too where the store's
    /// listing does not tell their sizes)
    Stats,
    /// Whether the store answers, and how long it took
    Ping,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be longer than zero".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let json = cli.json;
    let url = cli.url.clone().unwrap_or_default();
    let outcome = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(run::run(cli)),
        Err(e) => Err(Failure::Store(format!("cannot start a runtime: {e}"))),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            f.report(&url, json);
            ExitCode::from(f.code())
        }
    }
}

/// clap's own failures: help and version as clap prints them; a usage error with every URL of
/// the command line scrubbed (a URL given in the wrong place is quoted back), as one JSON
/// object with `--json`, exit 2.
fn usage_error(e: clap::Error) -> ExitCode {
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let args: Vec<String> = std::env::args().collect();
    let mut message = e.render().to_string();
    let urls = args
        .iter()
        .filter(|a| a.contains("://"))
        .map(|a| a.strip_prefix("--url=").unwrap_or(a).to_owned())
        .chain(std::env::var("STEADYCACHE_URL").ok());
    for url in urls {
        message = output::scrub(&message, &url);
    }
    let failure = Failure::Usage(message.trim().to_owned());
    failure.report("", args.iter().any(|a| a == "--json"));
    ExitCode::from(failure.code())
}

//! The commands.

use crate::describe::Described;
use crate::keys::{is_internal, namespace_of, Store};
use crate::output::{bytes, now_ms, table, Failure};
use crate::{Cli, Command};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Clears of more keys than this delete key by key behind a progress bar; smaller ones are one
/// `delete_prefix`.
const LARGE_CLEAR: usize = 1000;
/// Deletions in flight at once in a large clear.
const CLEAR_PARALLEL: usize = 32;

type Outcome = Result<(), Failure>;

/// Run one command.
pub async fn run(cli: Cli) -> Outcome {
    let store = Store::open(cli.url.as_deref(), cli.timeout)?;
    let json = cli.json;
    match cli.command {
        Command::Ls {
            prefix: None, all, ..
        } => namespaces(&store, all, json).await,
        Command::Ls {
            prefix: Some(prefix),
            limit,
            cursor,
            all,
        } => {
            ls(
                &store,
                &prefix,
                cursor.as_deref(),
                usize::from(limit),
                all,
                json,
            )
            .await
        }
        Command::Inspect { key } => {
            let d = read(&store, &key).await?;
            if json {
                println!("{}", d.inspect_json());
            } else {
                print!("{}", d.inspect_text());
            }
            Ok(())
        }
        Command::Get { key } => get(&store, &key, json).await,
        Command::Rm { key } => {
            if !store.delete(&key).await? {
                return Err(Failure::NotFound(format!("no such key: {key}")));
            }
            emit(json, json!({ "key": key, "removed": true }), || {
                format!("removed {key}\n")
            });
            Ok(())
        }
        Command::Clear { prefix, yes } => clear(&store, &prefix, yes, json).await,
        Command::Stats => stats(&store, json).await,
        Command::Ping => {
            let start = Instant::now();
            store.bounded("ping", store.backend().ping()).await?;
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            let name = store.backend().name().to_owned();
            emit(
                json,
                json!({ "ok": true, "backend": name, "ms": ms }),
                || format!("ok: {name} answered in {ms:.2} ms\n"),
            );
            Ok(())
        }
    }
}

/// Print the JSON document, or the text.
fn emit(json: bool, doc: serde_json::Value, text: impl FnOnce() -> String) {
    if json {
        println!("{doc}");
    } else {
        print!("{}", text());
    }
}

async fn read(store: &Store, key: &str) -> Result<Described, Failure> {
    match store.get(key).await? {
        Some(bytes) => Ok(Described::new(key, bytes)),
        None => Err(Failure::NotFound(format!("no such key: {key}"))),
    }
}

/// `ls` without a prefix: the namespaces and how many keys each holds.
async fn namespaces(store: &Store, all: bool, json: bool) -> Outcome {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    store
        .walk("", |k| {
            if all || !is_internal(&k.key) {
                *counts.entry(namespace_of(&k.key).to_owned()).or_default() += 1;
            }
        })
        .await?;
    let rows: Vec<Vec<String>> = counts
        .iter()
        .map(|(ns, n)| vec![ns.clone(), n.to_string()])
        .collect();
    let doc = json!({
        "namespaces": counts.iter().map(|(ns, n)| json!({ "namespace": ns, "entries": n })).collect::<Vec<_>>()
    });
    emit(json, doc, || table(&["NAMESPACE", "ENTRIES"], &rows));
    Ok(())
}

/// `ls PREFIX`: one page of keys, each read for its size, age and state.
async fn ls(
    store: &Store,
    prefix: &str,
    cursor: Option<&str>,
    limit: usize,
    all: bool,
    json: bool,
) -> Outcome {
    let page = store.page(prefix, cursor, limit.max(1)).await?;
    let now = now_ms();
    let mut found = Vec::new();
    let mut unreadable = Vec::new();
    for k in page.keys.iter().filter(|k| all || !is_internal(&k.key)) {
        // Gone (expired, removed) since it was listed: not shown. One that cannot be read (a
        // Redis key of another type, a damaged file) is shown as such; the page goes on.
        match store.get(&k.key).await {
            Ok(Some(bytes)) => found.push(Described::new(&k.key, bytes)),
            Ok(None) => {}
            Err(Failure::Store(why)) => unreadable.push((k.key.clone(), why)),
            Err(other) => return Err(other),
        }
    }
    let mut keys: Vec<serde_json::Value> = found.iter().map(|d| d.summary_json(now)).collect();
    keys.extend(
        unreadable
            .iter()
            .map(|(k, why)| json!({ "key": k, "state": "unreadable", "error": why })),
    );
    let doc = json!({ "prefix": prefix, "keys": keys, "next": page.next });
    emit(json, doc, || {
        let mut rows: Vec<Vec<String>> = found.iter().map(|d| d.row(now)).collect();
        rows.extend(unreadable.iter().map(|(k, _)| {
            let dash = || "-".to_owned();
            vec![k.clone(), dash(), dash(), "unreadable".into(), dash()]
        }));
        let mut out = table(&["KEY", "SIZE", "AGE", "STATE", "EXPIRES IN"], &rows);
        if let Some(next) = &page.next {
            out.push_str(&format!("more: ls {prefix:?} --cursor {next:?}\n"));
        }
        out
    });
    Ok(())
}

/// `get KEY`: the payload's bytes to stdout (with `--json`, the value when it is JSON, else
/// its hex).
async fn get(store: &Store, key: &str, json: bool) -> Outcome {
    let d = read(store, key).await?;
    if let Some(why) = d.unusable() {
        return Err(Failure::NotFound(format!(
            "{key}: the entry is {why}; a read of it is a miss"
        )));
    }
    if json {
        let value = d.payload_json();
        let doc = match value {
            Some(v) => json!({ "key": key, "value": v }),
            None => json!({ "key": key, "hex": crate::output::hex(d.payload()) }),
        };
        println!("{doc}");
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    out.write_all(d.payload())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::Store(format!("write to stdout: {e}")))
}

/// Ask on the terminal whether to clear; `Declined` when there is none to ask or the answer
/// is not yes.
fn confirm(prefix: &str, keys: usize) -> Outcome {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure::Declined(
            "clear: not confirmed (no terminal to ask; pass --yes)".into(),
        ));
    }
    let scope = if prefix.is_empty() {
        "every key the URL reaches".to_owned()
    } else {
        format!("{keys} keys under {prefix:?}")
    };
    eprint!("remove {scope}? [y/N] ");
    let mut answer = String::new();
    let _ = stdin.read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(Failure::Declined("clear: not confirmed".into()))
    }
}

/// `clear PREFIX`: every key under it, internal ones too.
async fn clear(store: &Store, prefix: &str, yes: bool, json: bool) -> Outcome {
    let mut keys = Vec::new();
    store.walk(prefix, |k| keys.push(k.key)).await?;
    if !yes {
        confirm(prefix, keys.len())?;
    }
    let mut removed = 0u64;
    if keys.len() > LARGE_CLEAR {
        let bar = if json || !std::io::stderr().is_terminal() {
            indicatif::ProgressBar::hidden()
        } else {
            indicatif::ProgressBar::new(keys.len() as u64)
        };
        for chunk in keys.chunks(CLEAR_PARALLEL) {
            let mut tasks = tokio::task::JoinSet::new();
            for key in chunk {
                let (store, key) = (store.clone(), key.clone());
                tasks.spawn(async move { store.delete(&key).await });
            }
            while let Some(done) = tasks.join_next().await {
                let gone = done.map_err(|e| Failure::Store(format!("clear: {e}")))??;
                removed += u64::from(gone);
                bar.inc(1);
            }
        }
        bar.finish_and_clear();
    }
    // Whatever is left (everything, for a small clear; keys written meanwhile otherwise).
    removed += store
        .bounded("clear", store.backend().delete_prefix(prefix))
        .await?;
    emit(
        json,
        json!({ "prefix": prefix, "removed": removed }),
        || format!("removed {removed} keys under {prefix:?}\n"),
    );
    Ok(())
}

/// `stats`: entries and bytes per namespace (the engine's own keys apart).
async fn stats(store: &Store, json: bool) -> Outcome {
    let mut listed = Vec::new();
    store.walk("", |k| listed.push(k)).await?;
    let mut per: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for k in listed {
        let size = match k.size {
            Some(s) => s,
            // A key that cannot be read (a Redis key of another type) counts, without bytes.
            None => match store.get(&k.key).await {
                Ok(Some(v)) => v.len() as u64,
                Ok(None) => continue,
                Err(Failure::Store(_)) => 0,
                Err(other) => return Err(other),
            },
        };
        let ns = if is_internal(&k.key) {
            "(internal)".to_owned()
        } else {
            namespace_of(&k.key).to_owned()
        };
        let e = per.entry(ns).or_default();
        e.0 += 1;
        e.1 += size;
    }
    let (entries, total): (u64, u64) = per.values().fold((0, 0), |a, v| (a.0 + v.0, a.1 + v.1));
    let doc = json!({
        "backend": store.backend().name(),
        "namespaces": per.iter().map(|(ns, (n, b))| json!({ "namespace": ns, "entries": n, "bytes": b })).collect::<Vec<_>>(),
        "entries": entries,
        "bytes": total,
    });
    emit(json, doc, || {
        let mut rows: Vec<Vec<String>> = per
            .iter()
            .map(|(ns, (n, b))| vec![ns.clone(), n.to_string(), bytes(*b)])
            .collect();
        rows.push(vec!["total".into(), entries.to_string(), bytes(total)]);
        table(&["NAMESPACE", "ENTRIES", "BYTES"], &rows)
    });
    Ok(())
}

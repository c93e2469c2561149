//! Secrets never appear in `Debug` or in errors (issue 12, item 8): every URL parser and every
//! config's `Debug`, for passwords in the user info (also holding `/`, `?`, `#` or `@`) and
//! secrets in query options.

use steadycache::{
    Cache, FileConfig, MemoryConfig, MongoConfig, RedisConfig, S3Config, SqliteConfig,
};

const SECRET: &str = "hunter2secret";

/// URLs that carry `SECRET` somewhere.
fn leaky(scheme: &str) -> Vec<String> {
    vec![
        format!("{scheme}://user:{SECRET}@localhost:1/x"),
        format!("{scheme}://user:a/{SECRET}@localhost:1/x"),
        format!("{scheme}://user:a?{SECRET}@localhost:1/x"),
        format!("{scheme}://user:a#{SECRET}@localhost:1/x"),
        format!("{scheme}://user:{SECRET}@x@localhost:1/x"),
        format!("{scheme}://localhost:1/x?authMechanismProperties=AWS_SESSION_TOKEN:{SECRET}"),
        format!("{scheme}://localhost:1/x?tlsCertificateKeyFilePassword={SECRET}"),
        format!("{scheme}://localhost:1/x?proxyPassword={SECRET}"),
        format!("{scheme}://localhost:1/x?bogus_option=1&password={SECRET}"),
    ]
}

fn check<T: std::fmt::Debug>(what: &str, url: &str, r: steadycache::Result<T>) {
    let shown = match r {
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("{e} / {e:?}"),
    };
    assert!(
        !shown.contains(SECRET),
        "{what} of {url} shows the secret: {shown}"
    );
}

#[test]
fn no_url_parser_or_debug_prints_a_secret() {
    for scheme in [
        "mem", "file", "sqlite", "redis", "rediss", "mongodb", "s3", "nope",
    ] {
        for url in leaky(scheme) {
            check("MemoryConfig", &url, MemoryConfig::from_url(&url));
            check("FileConfig", &url, FileConfig::from_url(&url));
            check("SqliteConfig", &url, SqliteConfig::from_url(&url));
            check("RedisConfig", &url, RedisConfig::from_url(&url));
            check("MongoConfig", &url, MongoConfig::from_url(&url));
            check("S3Config", &url, S3Config::from_url(&url));
            check("Cache", &url, Cache::from_url(&url).map(|_| ()));
        }
    }
}

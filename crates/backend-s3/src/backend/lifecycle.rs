//! The bucket lifecycle rule that eventually deletes entries nobody reads again.

use super::S3Backend;
use crate::error::convert;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter,
};
use steadycache_api::{Error, Result};

impl S3Backend {
    /// Install a lifecycle rule on the bucket that deletes objects under this backend's prefix
    /// `days` days after they were written: eventual cleanup of entries that expired and were
    /// never read again (reads already treat them as misses). S3 counts from the object's
    /// creation, not from the expiry in its metadata, so choose `days` above your longest ttl.
    ///
    /// The rule is named `steadycache:<prefix>`; the bucket's other rules are kept (S3 replaces
    /// a lifecycle configuration as a whole, so they are read and written back). Calling it
    /// again replaces the rule. Needs `s3:GetLifecycleConfiguration` and
    /// `s3:PutLifecycleConfiguration`; a store without lifecycle support answers with an error.
    pub async fn install_lifecycle_rule(&self, days: u32) -> Result<()> {
        let days = i32::try_from(days)
            .ok()
            .filter(|d| *d > 0)
            .ok_or_else(|| Error::Config(format!("lifecycle days must be 1 to {}", i32::MAX)))?;
        let client = self.client().await?;
        let bucket = &self.inner.bucket;
        let existing = match client
            .get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => out.rules().to_vec(),
            // No configuration yet.
            Err(e) if e.code() == Some("NoSuchLifecycleConfiguration") => Vec::new(),
            Err(e) => return Err(convert("get lifecycle of", bucket, e)),
        };
        let rules = merge_lifecycle_rule(existing, &self.inner.prefix, days)?;
        let config = BucketLifecycleConfiguration::builder()
            .set_rules(Some(rules))
            .build()
            .map_err(|e| Error::Config(format!("lifecycle configuration: {e}")))?;
        client
            .put_bucket_lifecycle_configuration()
            .bucket(bucket)
            .lifecycle_configuration(config)
            .send()
            .await
            .map_err(|e| convert("put lifecycle of", bucket, e))?;
        Ok(())
    }
}

/// `existing` rules with the rule for `prefix` added or replaced.
pub(crate) fn merge_lifecycle_rule(
    existing: Vec<LifecycleRule>,
    prefix: &str,
    days: i32,
) -> Result<Vec<LifecycleRule>> {
    let id = format!("steadycache:{prefix}");
    let id = if id.len() > 255 {
        format!(
            "steadycache:{:016x}",
            xxhash_rust::xxh3::xxh3_64(prefix.as_bytes())
        )
    } else {
        id
    };
    let rule = LifecycleRule::builder()
        .id(&id)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
        .expiration(LifecycleExpiration::builder().days(days).build())
        .build()
        .map_err(|e| Error::Config(format!("lifecycle rule: {e}")))?;
    let mut rules: Vec<LifecycleRule> = existing
        .into_iter()
        .filter(|r| r.id() != Some(id.as_str()))
        .collect();
    rules.push(rule);
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_rule_is_added_once_and_others_are_kept() {
        let other = LifecycleRule::builder()
            .id("logs")
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("logs/").build())
            .expiration(LifecycleExpiration::builder().days(7).build())
            .build()
            .unwrap();
        let once = merge_lifecycle_rule(vec![other], "cache/", 30).unwrap();
        let twice = merge_lifecycle_rule(once, "cache/", 10).unwrap();
        let ids: Vec<_> = twice.iter().map(|r| r.id().unwrap_or("")).collect();
        assert_eq!(ids, ["logs", "steadycache:cache/"]);
        let ours = &twice[1];
        assert_eq!(ours.expiration().and_then(|e| e.days()), Some(10));
        assert_eq!(ours.filter().and_then(|f| f.prefix()), Some("cache/"));
        let long = "p".repeat(600);
        let r = merge_lifecycle_rule(Vec::new(), &long, 1).unwrap();
        assert!(r[0].id().is_some_and(|id| id.len() <= 255));
    }
}

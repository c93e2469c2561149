//! Client setup: the SDK client from an [`S3Config`] (timeouts, retries, credentials, endpoint,
//! region), and the bucket made on first use when the config asks.

use crate::config::S3Config;
use crate::error::{convert, status};
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use aws_sdk_s3::Client;
use std::time::Duration;
use steadycache_api::Result;

/// The SDK client for `cfg`: credentials from the config or the AWS chain, region from the
/// config, the chain, else `us-east-1`.
///
/// The SDK's flexible checksums are asked for only where S3 requires them (`DeleteObjects`),
/// not on every `PutObject` and `GetObject`: every entry the engine stores carries its own
/// XXH3-64 check of the whole envelope, verified on each read, so a per-request CRC would be a
/// second pass over every value for nothing; and S3-compatible stores differ in how they handle
/// the `aws-chunked` checksum trailers (`s3s-fs` stores the checksum apart from the body, so a
/// read racing a write can pair one write's body with another's checksum).
pub(crate) async fn build_client(cfg: &S3Config) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(c) = &cfg.credentials {
        loader = loader.credentials_provider(Credentials::new(
            c.access_key_id.clone(),
            c.secret_access_key.clone(),
            c.session_token.clone(),
            None,
            "steadycache",
        ));
    }
    if let Some(r) = &cfg.region {
        loader = loader.region(Region::new(r.clone()));
    }
    let sdk = loader.load().await;
    let mut b = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(cfg.path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(cfg.connect_timeout)
                .operation_timeout(cfg.operation_timeout)
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(cfg.max_attempts)
                .with_initial_backoff(Duration::from_millis(50)),
        );
    if sdk.region().is_none() {
        b = b.region(Region::new("us-east-1"));
    }
    if let Some(e) = &cfg.endpoint {
        b = b.endpoint_url(e);
    }
    Client::from_conf(b.build())
}

/// Create `bucket` unless it exists, in the client's region (outside `us-east-1` S3 needs it
/// named as the location constraint). A 409 from a racing creator is fine when the bucket then
/// answers us: `BucketAlreadyExists` of a name another account owns does not (`HeadBucket` is
/// refused), and is reported.
pub(crate) async fn ensure_bucket(client: &Client, bucket: &str) -> Result<()> {
    match client.head_bucket().bucket(bucket).send().await {
        Ok(_) => return Ok(()),
        Err(e) if status(&e) == Some(404) => {}
        Err(e) => return Err(convert("head bucket", bucket, e)),
    }
    let mut req = client.create_bucket().bucket(bucket);
    if let Some(region) = client.config().region().map(|r| r.as_ref().to_owned()) {
        if region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
    }
    match req.send().await {
        Ok(_) => Ok(()),
        Err(e) if status(&e) == Some(409) => client
            .head_bucket()
            .bucket(bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|_| convert("create bucket", bucket, e)),
        Err(e) => Err(convert("create bucket", bucket, e)),
    }
}

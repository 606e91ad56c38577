//! Checkpoints on an S3-compatible object store, through the Arrow project's
//! `object_store` crate. A location is written `s3://BUCKET/PREFIX` wherever a
//! checkpoint directory goes (`--checkpoint-dir`, savepoint targets, `-s`);
//! below it the layout is the directory storage's: `JOB/chk-N/task-C-S` and
//! `JOB/chk-N/_metadata`.
//!
//! The same completion rule holds: an object appears whole or not at all
//! (a single PUT, or a multipart upload that is completed only after its last
//! part), and `_metadata` is written after every task's object, so an upload
//! cut off half-way leaves a checkpoint without `_metadata`, which is never
//! restored.
//!
//! Credentials and the endpoint come from the environment, as for AWS's own
//! tools: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT` (an S3-compatible server), `AWS_ALLOW_HTTP=true` (a plain
//! HTTP one). The JobManager and every TaskManager need them.
//! `EDDY_S3_RETRIES` bounds how often a failed request is tried again
//! (object_store's default: 10, with backoff, for up to 3 minutes).
//!
//! `object_store` is async; callers here are task threads and blocking
//! threads, so the calls run on `offload`'s runtime.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

/// The scheme of object-store locations.
const SCHEME: &str = "s3://";
/// Objects bigger than this are uploaded in parts of this size.
const PART: usize = 16 << 20;

/// Whether `location` names an object store rather than a directory.
pub fn is_object_url(location: &Path) -> bool {
    location.to_str().is_some_and(|s| s.starts_with(SCHEME))
}

/// An object of a store: the bucket's store and the key in it.
pub struct Object {
    store: Arc<dyn ObjectStore>,
    key: Key,
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why)
}

fn other(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { path, .. } => io::Error::new(io::ErrorKind::NotFound, format!("no object {path}")),
        e => io::Error::other(e.to_string()),
    }
}

/// Runs an object-store call (async) from the blocking code that checkpoints.
fn run<T: Send + 'static>(f: impl std::future::Future<Output = io::Result<T>> + Send + 'static) -> io::Result<T> {
    crate::offload::run(f).map_err(io::Error::other)?
}

/// The store of `bucket`, made once from the environment.
fn store(bucket: &str) -> io::Result<Arc<dyn ObjectStore>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let mut stores = STORES.get_or_init(Default::default).lock().unwrap();
    if let Some(s) = stores.get(bucket) {
        return Ok(s.clone());
    }
    // Two TLS providers are linked (ring, ours; aws-lc-rs, the HTTP client's):
    // name one, or a client that asks for the default finds none.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut retry = object_store::RetryConfig::default();
    if let Some(n) = std::env::var("EDDY_S3_RETRIES").ok().and_then(|n| n.parse().ok()) {
        retry.max_retries = n;
    }
    let built = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry)
        .build()
        .map_err(|e| invalid(format!("cannot use the S3 bucket {bucket}: {e}")))?;
    let s: Arc<dyn ObjectStore> = Arc::new(built);
    stores.insert(bucket.to_string(), s.clone());
    Ok(s)
}

impl Object {
    /// The object (or prefix) `location` names: `s3://BUCKET/KEY`. Keys with
    /// empty, `.` or `..` segments are refused, not normalised.
    pub fn at(location: &Path) -> io::Result<Object> {
        let shown = location.to_str().ok_or_else(|| invalid(format!("{} is not UTF-8", location.display())))?.to_string();
        let rest = shown.strip_prefix(SCHEME).ok_or_else(|| invalid(format!("{shown} is not an s3:// location")))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid(format!("{shown} names no bucket (s3://BUCKET/PREFIX)")));
        }
        let key = key.trim_end_matches('/');
        if key.split('/').any(|s| s == "." || s == "..") || key.contains("//") {
            return Err(invalid(format!("{shown} has an empty, '.' or '..' segment")));
        }
        let key = Key::parse(key).map_err(|e| invalid(format!("{shown}: {e}")))?;
        Ok(Object { store: store(bucket)?, key })
    }

    /// Stores `bytes` as this object, whole or not at all.
    pub fn put(&self, bytes: Vec<u8>) -> io::Result<()> {
        let (store, key) = (self.store.clone(), self.key.clone());
        run(async move {
            if bytes.len() <= PART {
                store.put(&key, PutPayload::from(bytes)).await.map_err(other)?;
                return Ok(());
            }
            // Parts are uploaded as they fill; the object appears at `finish`, or never.
            let upload = store.put_multipart(&key).await.map_err(other)?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
            for piece in bytes.chunks(PART) {
                if let Err(e) = w.wait_for_capacity(4).await {
                    // Parts of an upload never completed are kept (and billed) until aborted.
                    let _ = w.abort().await;
                    return Err(other(e));
                }
                w.write(piece);
            }
            w.finish().await.map_err(other)?;
            Ok(())
        })
    }

    /// The object's bytes (`NotFound` if there is none).
    pub fn get(&self) -> io::Result<Vec<u8>> {
        let (store, key) = (self.store.clone(), self.key.clone());
        run(async move { Ok(store.get(&key).await.map_err(other)?.bytes().await.map_err(other)?.to_vec()) })
    }

    /// Whether the object exists.
    pub fn exists(&self) -> io::Result<bool> {
        let (store, key) = (self.store.clone(), self.key.clone());
        run(async move {
            match store.head(&key).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(other(e)),
            }
        })
    }

    /// Deletes every object under this prefix (a checkpoint's).
    pub fn delete_all(&self) -> io::Result<()> {
        let (store, key) = (self.store.clone(), self.key.clone());
        run(async move {
            let listed: Vec<_> = store.list(Some(&key)).map_ok(|m| m.location).try_collect().await.map_err(other)?;
            for k in listed {
                match store.delete(&k).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(other(e)),
                }
            }
            Ok(())
        })
    }

    /// The names right under this prefix (its "directories").
    pub fn children(&self) -> io::Result<Vec<String>> {
        let (store, key) = (self.store.clone(), self.key.clone());
        run(async move {
            let listed = store.list_with_delimiter(Some(&key)).await.map_err(other)?;
            Ok(listed.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_name_a_bucket_and_plain_segments() {
        assert!(is_object_url(Path::new("s3://b/p")) && !is_object_url(Path::new("/tmp/s3:/x")));
        for bad in ["s3:///p", "s3://b/p/../q", "s3://b/./p", "s3://b/p//q"] {
            assert!(Object::at(Path::new(bad)).is_err(), "{bad}");
        }
        let ok = Object::at(Path::new("s3://bucket/a/b/")).unwrap();
        assert_eq!(ok.key.as_ref(), "a/b");
    }
}

//! Where bytes live: local paths, `file://`, `s3://` and `gs://` through `object_store`.
//!
//! A [`Location`] is a store plus a key; relative image paths in a CSV are joined onto the CSV's
//! folder. S3 takes its endpoint and credentials from the usual `AWS_*` variables (plain-HTTP
//! endpoints such as a local test server are allowed when the endpoint URL says `http://`);
//! GCS from the usual Google application credentials.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::{Error, Result, StorageAction};

#[derive(Clone)]
pub struct Location {
    store: Arc<dyn ObjectStore>,
    /// `s3://bucket`, `gs://bucket` or empty for the local file system.
    root: String,
    key: String,
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.root.is_empty() { write!(f, "/{}", self.key) } else { write!(f, "{}/{}", self.root, self.key) }
    }
}

impl Location {
    /// Parses a local path (relative to the current directory), `file://`, `s3://` or `gs://` URL.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |message: String| Error::storage_failed(StorageAction::Resolve, text, message);
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, key) = split_bucket(rest).ok_or_else(|| bad("expected s3://BUCKET/KEY".into()))?;
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(retry());
            let endpoint = std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT"));
            if endpoint.is_ok_and(|e| e.starts_with("http://")) {
                builder = builder.with_allow_http(true);
            }
            let store = builder.build().map_err(|e| bad(e.to_string()))?;
            return Ok(Self { store: Arc::new(store), root: format!("s3://{bucket}"), key: key.into() });
        }
        if let Some(rest) = text.strip_prefix("gs://") {
            let (bucket, key) = split_bucket(rest).ok_or_else(|| bad("expected gs://BUCKET/KEY".into()))?;
            let store = GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket)
                .with_retry(retry())
                .build()
                .map_err(|e| bad(e.to_string()))?;
            return Ok(Self { store: Arc::new(store), root: format!("gs://{bucket}"), key: key.into() });
        }
        if text.contains("://") && !text.starts_with("file://") {
            return Err(bad("unsupported URL scheme: expected a path, file://, s3:// or gs://".into()));
        }
        let path = std::path::PathBuf::from(text.strip_prefix("file://").unwrap_or(text));
        let absolute = lexical_absolute(&path).map_err(|e| bad(e.to_string()))?;
        let key = StorePath::from_absolute_path(&absolute).map_err(|e| bad(e.to_string()))?;
        Ok(Self { store: Arc::new(LocalFileSystem::new()), root: String::new(), key: key.to_string() })
    }

    /// The location of `relative` beside this one (in the same folder), or `relative` itself when
    /// it is an absolute path or URL.
    pub fn sibling(&self, relative: &str) -> Result<Self> {
        if relative.contains("://") || relative.starts_with('/') {
            return Self::parse(relative);
        }
        self.folder().join(relative)
    }

    /// The location of `name` inside this one, taken as a folder.
    pub fn child(&self, name: &str) -> Result<Self> {
        self.join(name)
    }

    /// True for the local file system (no network between us and the bytes).
    pub fn is_local(&self) -> bool {
        self.root.is_empty()
    }

    /// The folder this location is in.
    pub fn folder(&self) -> Self {
        let folder = self.key.rsplit_once('/').map_or("", |(folder, _)| folder);
        Self { store: self.store.clone(), root: self.root.clone(), key: folder.to_string() }
    }

    /// `relative` inside this location, taken as a folder; `..` may not climb above the root.
    fn join(&self, relative: &str) -> Result<Self> {
        let key = normalise(&join_key(&self.key, relative)).ok_or_else(|| {
            let root = if self.root.is_empty() { "/" } else { &self.root };
            let message = format!("it climbs above the root of the store ({root}) from {self}");
            Error::storage_failed(StorageAction::Resolve, relative, message)
        })?;
        Ok(Self { store: self.store.clone(), root: self.root.clone(), key })
    }

    /// True when `other` lies inside this location, taken as a folder.
    pub fn contains(&self, other: &Location) -> bool {
        self.root == other.root && (self.key.is_empty() || other.key.starts_with(&format!("{}/", self.key)))
    }

    /// A local file's location with every symbolic link resolved, so a link inside a folder
    /// that points outside it is seen as outside. Object stores have no links: unchanged. When
    /// the file does not exist, its longest existing ancestor is resolved and the rest kept, so
    /// the read still reports it missing, at a path comparable with resolved folders.
    pub async fn resolve_links(&self) -> Self {
        if !self.root.is_empty() {
            return self.clone();
        }
        let path = std::path::PathBuf::from(self.to_string());
        let mut existing = path.as_path();
        let mut missing = Vec::new();
        let real = loop {
            match tokio::fs::canonicalize(existing).await {
                Ok(real) => break missing.iter().rev().fold(real, |path, name| path.join(name)),
                Err(_) => match (existing.parent(), existing.file_name()) {
                    (Some(parent), Some(name)) => {
                        missing.push(name.to_owned());
                        existing = parent;
                    }
                    _ => return self.clone(),
                },
            }
        };
        match StorePath::from_absolute_path(&real) {
            Ok(key) => Self { store: self.store.clone(), root: String::new(), key: key.to_string() },
            Err(_) => self.clone(),
        }
    }

    /// True when `other` lies inside this location's folder (used to refuse `../` escapes).
    pub fn folder_contains(&self, other: &Location) -> bool {
        self.folder().contains(other)
    }

    pub async fn read(&self) -> Result<Bytes> {
        let result = self.store.get(&StorePath::from(self.key.as_str())).await;
        let object = result.map_err(|e| Error::storage(self, describe(&e)))?;
        object.bytes().await.map_err(|e| Error::storage(self, describe(&e)))
    }

    /// The object as a stream of chunks, so a large text can be checked as it arrives and
    /// dropped at the first problem instead of being held whole.
    pub async fn read_chunks(&self) -> Result<impl futures::Stream<Item = Result<Bytes>> + Send + 'static> {
        let result = self.store.get(&StorePath::from(self.key.as_str())).await;
        let object = result.map_err(|e| Error::storage(self, describe(&e)))?;
        let shown = self.to_string();
        Ok(object.into_stream().map_err(move |e| Error::storage(&shown, describe(&e))))
    }

    /// Reads the whole object unless it is larger than `max_bytes` (its size is known before
    /// any byte is read), so a huge file cannot exhaust memory.
    pub async fn read_at_most(&self, max_bytes: u64) -> Result<Bytes> {
        let result = self.store.get(&StorePath::from(self.key.as_str())).await;
        let object = result.map_err(|e| Error::storage(self, describe(&e)))?;
        if object.meta.size > max_bytes {
            let message = format!("{} bytes: more than the limit of {max_bytes}", object.meta.size);
            return Err(Error::storage(self, message));
        }
        object.bytes().await.map_err(|e| Error::storage(self, describe(&e)))
    }

    /// Bytes `range` of the object. A range that runs past the object's end is an error (some
    /// stores return what there is, so the length is checked here too).
    pub async fn read_range(&self, range: std::ops::Range<u64>) -> Result<Bytes> {
        let wanted = range.end - range.start;
        let result = self.store.get_range(&StorePath::from(self.key.as_str()), range.clone()).await;
        // A local file says "Wanted range starting at ..."; S3 and GCS answer 416 Range Not Satisfiable.
        let bytes = result.map_err(|e| match describe(&e) {
            message if message.to_ascii_lowercase().contains("range") => {
                Error::storage(self, format!("{RANGE_PAST_END} ({message})"))
            }
            message => Error::storage(self, message),
        })?;
        if bytes.len() as u64 != wanted {
            let message = format!("range {}..{}: {RANGE_PAST_END} after {} bytes", range.start, range.end, bytes.len());
            return Err(Error::storage(self, message));
        }
        Ok(bytes)
    }

    /// Writes the whole object. Local files are staged and renamed and S3/GCS puts are
    /// all-or-nothing, so a reader never sees half an object.
    pub async fn write(&self, data: Bytes) -> Result<()> {
        self.store
            .put(&StorePath::from(self.key.as_str()), PutPayload::from(data))
            .await
            .map(|_| ())
            .map_err(|e| Error::storage_failed(StorageAction::Write, self, describe(&e)))
    }

    pub async fn delete(&self) -> Result<()> {
        self.store
            .delete(&StorePath::from(self.key.as_str()))
            .await
            .map_err(|e| Error::storage_failed(StorageAction::Delete, self, describe(&e)))
    }

    /// Every object directly or indirectly under this prefix, sorted by key.
    pub async fn list(&self) -> Result<Vec<Location>> {
        let mut keys: Vec<String> = self.object_paths().await?.iter().map(ToString::to_string).collect();
        keys.sort_unstable();
        Ok(keys.into_iter().map(|key| Self { store: self.store.clone(), root: self.root.clone(), key }).collect())
    }

    /// Names (last path segment) of the objects directly or indirectly under this prefix.
    pub async fn list_names(&self) -> Result<Vec<String>> {
        Ok(self.object_paths().await?.iter().filter_map(|p| p.filename().map(str::to_string)).collect())
    }

    async fn object_paths(&self) -> Result<Vec<StorePath>> {
        let prefix = StorePath::from(self.key.as_str());
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| Error::storage_failed(StorageAction::List, self, describe(&e)))?;
        Ok(metas.into_iter().map(|m| m.location).collect())
    }
}

/// Retries for cloud stores, bounded well below the default 3 minutes: a checkpoint upload that
/// cannot finish in this time is reported failed (the storage incident opens) and the next one
/// tries again, rather than one upload hanging on through a long outage.
fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 5,
        retry_timeout: std::time::Duration::from_secs(15),
        ..Default::default()
    }
}

/// The absolute form of `path` with `.` and `..` resolved by name (as a shell would, without
/// following links), because object_store keys may not contain them.
fn lexical_absolute(path: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for component in std::path::absolute(path)?.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

fn split_bucket(rest: &str) -> Option<(&str, &str)> {
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then_some((bucket, key.trim_end_matches('/')))
}

fn join_key(folder: &str, relative: &str) -> String {
    if folder.is_empty() { relative.to_string() } else { format!("{folder}/{relative}") }
}

/// Resolves `.` and `..`; `None` when the path climbs above the root.
fn normalise(key: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in key.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

/// What a read of a range the object does not hold says, whatever the store.
pub const RANGE_PAST_END: &str = "past the end of the object";

/// object_store's NotFound message is long; say it plainly.
fn describe(error: &object_store::Error) -> String {
    match error {
        object_store::Error::NotFound { .. } => "not found".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_beside_the_csv_and_dotdot_is_tracked() {
        let csv = Location::parse("/data/lfw5/train.csv").unwrap();
        let image = csv.sibling("train/a/b.jpg").unwrap();
        assert_eq!(image.to_string(), "/data/lfw5/train/a/b.jpg");
        assert!(csv.folder_contains(&image));
        let outside = csv.sibling("../other/x.jpg").unwrap();
        assert_eq!(outside.to_string(), "/data/other/x.jpg");
        assert!(!csv.folder_contains(&outside));
    }

    #[test]
    fn local_paths_with_dotdot_are_resolved() {
        let csv = Location::parse("/data/jobs/../lfw5/./train.csv").unwrap();
        assert_eq!(csv.to_string(), "/data/lfw5/train.csv");
    }

    #[test]
    fn s3_urls_keep_bucket_and_key() {
        let csv = Location::parse("s3://bucket/sets/lfw5/train.csv").unwrap();
        assert_eq!(csv.sibling("img/a.jpg").unwrap().to_string(), "s3://bucket/sets/lfw5/img/a.jpg");
    }

    #[test]
    fn a_path_above_the_root_is_named_as_written_and_from_where() {
        let csv = Location::parse("/data/lfw5/train.csv").unwrap();
        let err = csv.sibling("../../../x.jpg").unwrap_err().to_string();
        assert_eq!(err, "cannot resolve ../../../x.jpg: it climbs above the root of the store (/) from /data/lfw5");
        let csv = Location::parse("s3://bucket/sets/train.csv").unwrap();
        let err = csv.sibling("../../x.jpg").unwrap_err().to_string();
        assert_eq!(
            err,
            "cannot resolve ../../x.jpg: it climbs above the root of the store (s3://bucket) from s3://bucket/sets"
        );
    }

    #[tokio::test]
    async fn a_failed_write_says_write() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let inside_a_file = Location::parse(file.join("ckpt").to_str().unwrap()).unwrap();
        let err = inside_a_file.write(Bytes::from_static(b"data")).await.unwrap_err().to_string();
        assert!(err.starts_with(&format!("cannot write {}: ", file.join("ckpt").display())), "{err}");
        let err = inside_a_file.read().await.unwrap_err().to_string();
        assert!(err.starts_with("cannot read "), "{err}");
    }

    #[tokio::test]
    async fn links_are_resolved_and_missing_files_keep_their_resolved_folder() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        std::fs::create_dir(real.join("data")).unwrap();
        std::os::unix::fs::symlink(real.join("data"), real.join("link")).unwrap();
        let through_link = Location::parse(real.join("link/a/b.jpg").to_str().unwrap()).unwrap();
        let resolved = through_link.resolve_links().await;
        assert_eq!(resolved.to_string(), real.join("data/a/b.jpg").display().to_string());
        let folder = Location::parse(real.join("data").to_str().unwrap()).unwrap();
        assert!(folder.contains(&resolved) && !folder.contains(&through_link));
    }

    #[test]
    fn unknown_schemes_are_refused_by_name() {
        let err = Location::parse("ftp://host/x.csv").unwrap_err().to_string();
        assert!(err.contains("ftp://host/x.csv") && err.contains("unsupported URL scheme"), "{err}");
    }
}

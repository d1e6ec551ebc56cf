//! `hermetic push <oci-layout> <ref>` (and `hermetic image --push`).
//!
//! Order: every blob (HEAD first; a cross-repository mount when the blob is
//! known to be in another repository of the same registry; else an upload,
//! monolithic up to `chunk_size`, chunked above it), the image manifest by
//! digest, then its tags, then a read-back of the manifest whose digest must
//! match. Last, the SBOM artifact (whose `subject` is the image) by digest;
//! if the registry has no referrers API (`GET /v2/<repo>/referrers/<digest>`
//! answers 404 and the manifest PUT had no `OCI-Subject` header), it is also
//! tagged `sha256-<hex>.sbom` so tools can find it by name.
//!
//! Resuming: a blob failing mid-upload is restarted (bounded, with backoff)
//! after a HEAD; a rerun of the push skips every blob already there. Blobs
//! pushed are remembered per registry (`$HERMETIC_HOME/oci/pushed.json`) so
//! a later push to another repository of that registry mounts them instead
//! of uploading them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use oci_spec::image::{Descriptor, ImageManifest};
use serde::Serialize;
use tracing::{info, instrument, warn};

use super::auth::{self, Credentials, Secret};
use super::build::image_descriptor;
use super::layout::{Layout, digest_of};
use super::reference::Reference;
use super::registry::{Registry, RetryPolicy};
use super::{OciError, SBOM_ARTIFACT_TYPE, annotation};
use crate::progress;

const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Default chunk size: blobs up to this size go in one PUT.
pub const DEFAULT_CHUNK_SIZE: u64 = 32 << 20;

/// Where and how to push.
#[derive(Debug, Clone)]
pub struct PushTarget {
    /// `registry/repo[:tag]`; without a tag, the layout's `ref.name` is used.
    pub reference: String,
    /// With `password`: explicit credentials (else Docker's config).
    pub username: Option<String>,
    /// The password or token for `username`.
    pub password: Option<Secret>,
    /// Plain HTTP even for non-loopback registries.
    pub insecure: bool,
    /// Blobs larger than this are uploaded in chunks of this size.
    pub chunk_size: u64,
    /// Extra repositories (same registry) to try mounting blobs from.
    pub mount_from: Vec<String>,
    /// How failed requests are retried.
    pub retry: RetryPolicy,
}

impl PushTarget {
    /// A target with defaults (Docker config credentials, 32 MiB chunks).
    pub fn new(reference: impl Into<String>) -> Self {
        PushTarget {
            reference: reference.into(),
            username: None,
            password: None,
            insecure: false,
            chunk_size: DEFAULT_CHUNK_SIZE,
            mount_from: Vec::new(),
            retry: RetryPolicy::default(),
        }
    }
}

/// `hermetic push`: a layout and a target.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// The OCI layout directory to push.
    pub layout: PathBuf,
    /// Where to push it, and how.
    pub target: PushTarget,
}

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobOutcome {
    /// Already in the repository (HEAD said so).
    Exists,
    /// Mounted from another repository of the registry.
    Mounted,
    /// Sent by this push.
    Uploaded,
}

/// One blob of the push.
#[derive(Debug, Clone, Serialize)]
pub struct BlobReport {
    /// `sha256:…` of the blob.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Whether it was there, mounted or uploaded.
    pub outcome: BlobOutcome,
    /// Upload attempts (0 when it existed or was mounted).
    pub attempts: u32,
    /// The repository it was mounted from, if it was.
    pub mounted_from: Option<String>,
}

/// How the SBOM was attached.
#[derive(Debug, Clone, Serialize)]
pub struct SbomReport {
    /// Digest of the SBOM artifact manifest.
    pub digest: String,
    /// `referrers` (the registry indexes `subject`) or `tag` (fallback).
    pub method: String,
    /// The fallback tag, when used.
    pub tag: Option<String>,
}

/// The result of a push, for `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    /// The registry host.
    pub registry: String,
    /// The repository.
    pub repository: String,
    /// `sha256:…` of the image manifest.
    pub digest: String,
    /// `registry/repo@sha256:…`.
    pub pinned: String,
    /// The tags set on the manifest.
    pub tags: Vec<String>,
    /// Every blob, with what happened to it.
    pub blobs: Vec<BlobReport>,
    /// Bytes of blobs sent (counting every upload attempt).
    pub bytes_uploaded: u64,
    /// How the SBOM was attached, if the layout has one.
    pub sbom: Option<SbomReport>,
    /// Wall time of the push, in milliseconds.
    pub elapsed_ms: u64,
}

/// Pushes the layout at `settings.layout`.
pub async fn push(settings: &PushSettings) -> Result<PushReport, OciError> {
    let layout = Layout::open(&settings.layout)?;
    push_layout(&layout, &settings.target).await
}

fn credentials(
    target: &PushTarget,
    reference: &Reference,
) -> Result<Option<Credentials>, OciError> {
    match (&target.username, &target.password) {
        (Some(u), p) => Ok(Some(Credentials {
            username: u.clone(),
            password: p.clone().unwrap_or_else(|| Secret::new("")),
        })),
        (None, _) => auth::from_docker_config(&reference.registry),
    }
}

fn read_manifest(layout: &Layout, desc: &Descriptor) -> Result<(Vec<u8>, ImageManifest), OciError> {
    let bytes = layout.read_blob(desc.digest().as_ref())?;
    let manifest = serde_json::from_slice(&bytes).map_err(|e| OciError::BadBlob {
        layout: layout.dir.clone(),
        digest: desc.digest().to_string(),
        reason: format!("not an image manifest: {e}"),
    })?;
    Ok((bytes, manifest))
}

/// Pushes a layout's image (and its SBOM referrer, if any) to `target`.
#[instrument(skip_all, fields(reference = %target.reference))]
pub async fn push_layout(layout: &Layout, target: &PushTarget) -> Result<PushReport, OciError> {
    let started = Instant::now();
    let reference = Reference::parse(&target.reference)?;
    let creds = credentials(target, &reference)?;
    let registry = Registry::new(&reference, creds, target.insecure, target.retry)?;
    let image_desc = image_descriptor(&layout.index).ok_or_else(|| OciError::BadLayout {
        path: layout.dir.clone(),
        reason: "index.json lists no image manifest".into(),
    })?;
    let (manifest_bytes, manifest) = read_manifest(layout, image_desc)?;
    let digest = image_desc.digest().to_string();
    let tags: Vec<String> = reference
        .tag
        .clone()
        .or_else(|| {
            image_desc
                .annotations()
                .as_ref()
                .and_then(|a| a.get(annotation::REF_NAME).cloned())
        })
        .into_iter()
        .collect();

    let mut record = PushedRecord::load();
    let mut blobs = Vec::new();
    push_blobs(
        &registry,
        layout,
        &manifest,
        target,
        &mut record,
        &mut blobs,
    )
    .await?;

    registry
        .put_manifest(&digest, MANIFEST_MEDIA_TYPE, &manifest_bytes)
        .await?;
    for tag in &tags {
        registry
            .put_manifest(tag, MANIFEST_MEDIA_TYPE, &manifest_bytes)
            .await?;
    }
    let check_ref = tags.first().cloned().unwrap_or_else(|| digest.clone());
    let served = registry
        .get_manifest(&check_ref, MANIFEST_MEDIA_TYPE)
        .await?;
    let got = digest_of(&served);
    if got != digest {
        return Err(OciError::DigestMismatch {
            reference: format!("{}:{check_ref}", reference.name()),
            expected: digest,
            got,
        });
    }
    info!(digest = %digest, "pushed {}", reference.name());

    let sbom = match layout.index.manifests().iter().find(|d| {
        d.artifact_type()
            .as_ref()
            .is_some_and(|t| t.to_string() == SBOM_ARTIFACT_TYPE)
    }) {
        Some(desc) => Some(
            push_sbom(
                &registry,
                layout,
                desc,
                &digest,
                target,
                &mut record,
                &mut blobs,
            )
            .await?,
        ),
        None => None,
    };

    let bytes_uploaded = blobs.iter().map(|b| b.size * u64::from(b.attempts)).sum();
    Ok(PushReport {
        registry: reference.registry.clone(),
        repository: reference.repository.clone(),
        pinned: reference.pinned(&digest),
        digest,
        tags,
        blobs,
        bytes_uploaded,
        sbom,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// Pushes a manifest's config and layers (skipping digests already in
/// `blobs`), mounting from repositories the record or the target name.
async fn push_blobs(
    registry: &Registry,
    layout: &Layout,
    manifest: &ImageManifest,
    target: &PushTarget,
    record: &mut PushedRecord,
    blobs: &mut Vec<BlobReport>,
) -> Result<(), OciError> {
    for desc in std::iter::once(manifest.config()).chain(manifest.layers()) {
        let digest = desc.digest().as_ref();
        if blobs.iter().any(|b| b.digest == digest) {
            continue;
        }
        let mut candidates: BTreeSet<String> = target.mount_from.iter().cloned().collect();
        candidates.extend(record.repos_with(registry.registry(), digest));
        candidates.remove(registry.repository());
        blobs.push(push_blob(registry, layout, desc, target, &candidates).await?);
        record.add(registry.registry(), digest, registry.repository());
    }
    record.save();
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn push_sbom(
    registry: &Registry,
    layout: &Layout,
    desc: &Descriptor,
    subject: &str,
    target: &PushTarget,
    record: &mut PushedRecord,
    blobs: &mut Vec<BlobReport>,
) -> Result<SbomReport, OciError> {
    let (bytes, manifest) = read_manifest(layout, desc)?;
    push_blobs(registry, layout, &manifest, target, record, blobs).await?;
    let digest = desc.digest().to_string();
    let acknowledged = registry
        .put_manifest(&digest, MANIFEST_MEDIA_TYPE, &bytes)
        .await?;
    if acknowledged || registry.referrers(subject).await?.is_some() {
        return Ok(SbomReport {
            digest,
            method: "referrers".into(),
            tag: None,
        });
    }
    let tag = format!("{}.sbom", subject.replace(':', "-"));
    registry
        .put_manifest(&tag, MANIFEST_MEDIA_TYPE, &bytes)
        .await?;
    Ok(SbomReport {
        digest,
        method: "tag".into(),
        tag: Some(tag),
    })
}

fn transient(e: &OciError) -> bool {
    match e {
        OciError::Transport { .. } => true,
        OciError::Registry { status, .. } => *status >= 500 || *status == 429 || *status == 404,
        _ => false,
    }
}

/// One blob: exists, mounted, or uploaded (restarted on transient errors).
async fn push_blob(
    registry: &Registry,
    layout: &Layout,
    desc: &Descriptor,
    target: &PushTarget,
    mount_from: &BTreeSet<String>,
) -> Result<BlobReport, OciError> {
    let digest = desc.digest().to_string();
    let size = desc.size();
    let path = layout.blob_path(&digest);
    let report = |outcome, attempts, mounted_from| BlobReport {
        digest: digest.clone(),
        size,
        outcome,
        attempts,
        mounted_from,
    };
    if registry.blob_exists(&digest).await? {
        return Ok(report(BlobOutcome::Exists, 0, None));
    }
    let mut session = None;
    for from in mount_from {
        match registry.mount(&digest, from).await {
            Ok(None) => return Ok(report(BlobOutcome::Mounted, 0, Some(from.clone()))),
            Ok(Some(location)) => {
                session = Some(location);
                break;
            }
            Err(e) => warn!("mount of {digest} from {from} failed: {e}"),
        }
    }
    let retry = registry.retry();
    let short = &digest[7..19.min(digest.len())];
    let bar = progress::bytes(format!("push {short}"), Some(size));
    let mut attempt = 0;
    loop {
        attempt += 1;
        bar.set_position(0);
        let result = async {
            let location = match session.take() {
                Some(l) => l,
                None => registry.start_upload(&digest).await?,
            };
            if target.chunk_size == 0 || size <= target.chunk_size {
                registry
                    .upload_monolithic(&location, &digest, &path, size, Some(bar.clone()))
                    .await
            } else {
                registry
                    .upload_chunked(
                        location,
                        &digest,
                        &path,
                        size,
                        target.chunk_size,
                        Some(bar.clone()),
                    )
                    .await
            }
        }
        .await;
        match result {
            Ok(()) => break,
            Err(e) if transient(&e) && attempt < retry.attempts => {
                let delay = retry.backoff * 2u32.saturating_pow(attempt - 1);
                warn!(
                    "upload of {digest} failed ({e}); restarting it in {} ms",
                    delay.as_millis()
                );
                tokio::time::sleep(delay).await;
                // It may have arrived before the connection dropped.
                if registry.blob_exists(&digest).await.unwrap_or(false) {
                    break;
                }
            }
            Err(e) => {
                bar.abandon();
                return Err(e);
            }
        }
    }
    bar.finish_and_clear();
    Ok(report(BlobOutcome::Uploaded, attempt, None))
}

/// Which repositories of which registry hold a blob we pushed.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
struct PushedRecord {
    registries: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

impl PushedRecord {
    fn path() -> PathBuf {
        crate::paths::home().join("oci").join("pushed.json")
    }

    fn load() -> Self {
        fs_err::read(Self::path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn repos_with(&self, registry: &str, digest: &str) -> Vec<String> {
        self.registries
            .get(registry)
            .and_then(|m| m.get(digest))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn add(&mut self, registry: &str, digest: &str, repo: &str) {
        self.registries
            .entry(registry.to_string())
            .or_default()
            .entry(digest.to_string())
            .or_default()
            .insert(repo.to_string());
    }

    /// Best effort: the record only saves uploads, it is never required.
    fn save(&self) {
        let path = Self::path();
        let write = || -> std::io::Result<()> {
            let dir = path.parent().unwrap_or(Path::new("."));
            fs_err::create_dir_all(dir)?;
            let tmp = tempfile::NamedTempFile::new_in(dir)?;
            fs_err::write(
                tmp.path(),
                crate::json::canonical_compact("the push record", self)?,
            )?;
            tmp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        };
        if let Err(e) = write() {
            warn!("cannot record pushed blobs in {}: {e}", path.display());
        }
    }
}

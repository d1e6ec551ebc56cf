//! Making local images: a suite's base image (its rootfs tarball imported
//! into the engine) and the local builder for a baseline (the builder
//! Dockerfile built on that base). Both are cached by their catalog inputs
//! hash: found through the lock, or by the tag that carries the hash.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;
use tracing::{info, instrument};

use super::lock::{Lock, LockedImage};
use super::{BuilderError, ms, rootfs};
use crate::catalog::{BUILDER_DOCKERFILE, Catalog, Source};
use crate::engine::{BuildImageSpec, Engine};
use crate::glibc::Glibc;
use crate::paths;

/// A local image that is ready (freshly built or cached).
#[derive(Debug, Clone, Serialize)]
pub struct ReadyImage {
    /// Its tag.
    pub tag: String,
    /// Its image ID.
    pub image_id: String,
    /// The inputs hash it was made from.
    pub inputs_hash: String,
    /// True when nothing had to be built.
    pub cached: bool,
    /// How long making (or finding) it took.
    pub elapsed_ms: u64,
}

/// Makes (or finds cached) the local builder for `glibc`.
#[instrument(skip_all, fields(glibc = %glibc))]
pub async fn build_local_builder(
    engine: &Engine,
    glibc: Glibc,
    force: bool,
) -> Result<ReadyImage, BuilderError> {
    let started = Instant::now();
    let catalog = Catalog::active()?;
    let entry = catalog.builder(glibc)?;
    let suite = match (entry.source, entry.suite.as_deref()) {
        (Source::Local, Some(suite)) => suite.to_string(),
        _ => {
            return Err(BuilderError::NotLocal {
                glibc,
                local: catalog.local_baselines(),
            });
        }
    };
    let inputs_hash = catalog.builder_inputs_hash(entry);
    let tag = engine.kind().local_image_name(&format!(
        "hermetic/builder:glibc{glibc}-{}",
        &inputs_hash[..12]
    ));
    let lock_path = paths::image_lock();
    let key = glibc.to_string();
    if !force {
        let lock = Lock::load(&lock_path)?;
        if let Some(ready) = cached(engine, lock.builders.get(&key), &tag, &inputs_hash).await? {
            Lock::record(&lock_path, |l| &mut l.builders, key, ready.clone())?;
            return Ok(ready_image(ready, true, started));
        }
    }
    let base = ensure_base(engine, &suite, force).await?;
    let context = builder_context(&catalog.local.dockerfile)?;
    let python = &catalog.local.python;
    let build_args = HashMap::from([
        ("BASE".to_string(), base.image_id.clone()),
        ("PYTHON_VERSION".to_string(), python.version.clone()),
        ("PYTHON_URL".to_string(), python.url.clone()),
        ("PYTHON_SHA256".to_string(), python.sha256.clone()),
        (
            "SOURCE_DATE_EPOCH".to_string(),
            catalog.local.source_date_epoch.to_string(),
        ),
    ]);
    let labels = HashMap::from([
        ("io.hermetic.inputs-hash".to_string(), inputs_hash.clone()),
        ("io.hermetic.glibc".to_string(), glibc.to_string()),
        ("io.hermetic.suite".to_string(), suite.clone()),
    ]);
    let log = paths::log_dir().join(format!("images-build-glibc{glibc}.log"));
    info!("building local builder {tag} (log: {})", log.display());
    let image_id = engine
        .build_image(&BuildImageSpec {
            context_tar: context.path().to_path_buf(),
            dockerfile: catalog.local.dockerfile.clone(),
            tag: tag.clone(),
            build_args,
            labels,
            log,
        })
        .await?;
    let locked = LockedImage {
        tag,
        image_id,
        inputs_hash,
    };
    Lock::record(&lock_path, |l| &mut l.builders, key, locked.clone())?;
    Ok(ready_image(locked, false, started))
}

/// Makes (or finds cached) the minbase image of a Debian suite.
#[instrument(skip_all, fields(suite = %suite))]
pub async fn ensure_base(
    engine: &Engine,
    suite: &str,
    force: bool,
) -> Result<ReadyImage, BuilderError> {
    let started = Instant::now();
    let catalog = Catalog::active()?;
    catalog.suite_glibc(suite)?;
    let inputs_hash = catalog.base_inputs_hash(suite);
    let tag = engine
        .kind()
        .local_image_name(&format!("hermetic/base:{suite}-{}", &inputs_hash[..12]));
    let lock_path = paths::image_lock();
    if !force {
        let lock = Lock::load(&lock_path)?;
        if let Some(ready) = cached(engine, lock.bases.get(suite), &tag, &inputs_hash).await? {
            Lock::record(
                &lock_path,
                |l| &mut l.bases,
                suite.to_string(),
                ready.clone(),
            )?;
            return Ok(ready_image(ready, true, started));
        }
    }
    let rootfs = rootfs::ensure_rootfs(suite, force).await?;
    let changes = vec!["CMD [\"/bin/bash\"]".to_string()];
    let image_id = engine.import_rootfs(&rootfs.path, &tag, &changes).await?;
    let locked = LockedImage {
        tag,
        image_id,
        inputs_hash,
    };
    Lock::record(
        &lock_path,
        |l| &mut l.bases,
        suite.to_string(),
        locked.clone(),
    )?;
    Ok(ready_image(locked, false, started))
}

fn ready_image(locked: LockedImage, cached: bool, started: Instant) -> ReadyImage {
    ReadyImage {
        tag: locked.tag,
        image_id: locked.image_id,
        inputs_hash: locked.inputs_hash,
        cached,
        elapsed_ms: ms(started),
    }
}

/// The lock entry if it is current and its image is present; else an image
/// tagged with the current inputs hash (e.g. built before the lock was lost).
async fn cached(
    engine: &Engine,
    locked: Option<&LockedImage>,
    tag: &str,
    inputs_hash: &str,
) -> Result<Option<LockedImage>, BuilderError> {
    if let Some(l) = locked.filter(|l| l.inputs_hash == inputs_hash)
        && engine.inspect_image(&l.image_id).await?.is_some()
    {
        return Ok(Some(l.clone()));
    }
    Ok(engine.inspect_image(tag).await?.map(|info| LockedImage {
        tag: tag.to_string(),
        image_id: info.id,
        inputs_hash: inputs_hash.to_string(),
    }))
}

/// The build context of the local builder: just its Dockerfile.
fn builder_context(name: &str) -> Result<tempfile::NamedTempFile, BuilderError> {
    let tmp = tempfile::NamedTempFile::new()?;
    let mut builder = tar::Builder::new(tmp.reopen()?);
    let mut header = tar::Header::new_gnu();
    header.set_size(BUILDER_DOCKERFILE.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, name, BUILDER_DOCKERFILE.as_bytes())?;
    builder.finish()?;
    Ok(tmp)
}

//! Choosing the builder a build runs in and checking it: the catalog's
//! entry for the baseline (pulled and digest-checked when upstream, taken
//! from the lock when local) or the image given with `--builder-image`,
//! then the glibc actually inside it, which must not be newer than the
//! baseline. Also `hermetic images list` and the runtime bases.

use std::path::Path;

use serde::Serialize;
use tracing::instrument;

use super::BuilderError;
use super::lock::{Lock, LockedImage};
use crate::catalog::{Catalog, Source};
use crate::engine::{ContainerSpec, Engine, EngineError, Network};
use crate::glibc::Glibc;
use crate::paths;

/// Where libc may live inside an image (Debian multiarch, then RHEL-style).
const LIBC_PATHS: &[&str] = &[
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/lib64/libc.so.6",
    "/usr/lib64/libc.so.6",
];

/// The builder chosen for a baseline, checked.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedBuilder {
    /// The baseline asked for.
    pub requested: Glibc,
    /// The glibc found inside the image (≤ requested).
    pub found: Glibc,
    /// The pinned reference (`name@sha256:…`) or local tag.
    pub reference: String,
    /// The exact image ID containers are created from.
    pub image_id: String,
    /// Upstream or local.
    pub source: Source,
    /// Prefix of the CPython the bundle's runtime is taken from.
    pub python_prefix: String,
    /// Whether that CPython has a shared libpython.
    pub shared_libpython: bool,
}

/// One row of `hermetic images list`.
#[derive(Debug, Clone, Serialize)]
pub struct ListedImage {
    /// `builder` or `runtime`.
    pub role: &'static str,
    /// Its baseline.
    pub glibc: Glibc,
    /// Upstream or local.
    pub source: Source,
    /// Local images: the Debian suite.
    pub suite: Option<String>,
    /// The pinned reference or the local tag.
    pub reference: Option<String>,
    /// The image ID, when known.
    pub image_id: Option<String>,
    /// Whether the engine has it.
    pub present: bool,
    /// Local images: the lock entry is stale (inputs changed since built).
    pub stale: bool,
}

/// Chooses the builder for a baseline (or checks the one given with
/// `--builder-image`), makes sure it is present, and checks the glibc
/// inside it is not newer than the baseline.
#[instrument(skip_all, fields(glibc = %glibc))]
pub async fn resolve_builder(
    engine: &Engine,
    glibc: Glibc,
    image_override: Option<&str>,
) -> Result<ResolvedBuilder, BuilderError> {
    let catalog = Catalog::embedded()?;
    let hint = local_hint(catalog);
    let local_prefix = catalog.local.python.prefix();
    let (reference, image_id, source, python_prefix, shared) = if let Some(image) = image_override {
        let info = if image.contains('@') {
            engine.ensure_pinned(image, Some(hint)).await?
        } else {
            engine
                .inspect_image(image)
                .await?
                .ok_or_else(|| EngineError::ImageUnavailable {
                    reference: image.to_string(),
                    reason: "no such image in the engine".into(),
                    hint: Some(hint),
                })?
        };
        let local = info.labels.contains_key("io.hermetic.inputs-hash");
        // A local builder given by ID keeps the name it was built under, so
        // records and SBOMs read the same as with the catalog's resolution.
        let builder_tag = engine.kind().local_image_name("hermetic/builder:");
        let reference = match info
            .repo_tags
            .iter()
            .find(|t| local && t.starts_with(&builder_tag))
        {
            Some(tag) if !image.contains('@') => tag.clone(),
            _ => image.to_string(),
        };
        let source = if local {
            Source::Local
        } else {
            Source::Upstream
        };
        (reference, info.id, source, local_prefix, local)
    } else {
        let entry = catalog.builder(glibc)?;
        match entry.source {
            Source::Upstream => {
                let reference = entry.reference.clone().unwrap_or_default();
                let info = engine.ensure_pinned(&reference, Some(hint)).await?;
                let prefix = entry.python_prefix.clone().unwrap_or_default();
                (reference, info.id, Source::Upstream, prefix, false)
            }
            Source::Local => {
                let lock = Lock::load(&paths::image_lock())?;
                let missing = |reason: String| BuilderError::LocalMissing { glibc, reason };
                let locked = lock
                    .builders
                    .get(&glibc.to_string())
                    .ok_or_else(|| missing("no local builder has been built".into()))?;
                if locked.inputs_hash != catalog.builder_inputs_hash(entry) {
                    return Err(missing(format!(
                        "the local builder {} was made from older inputs",
                        locked.tag
                    )));
                }
                if engine.inspect_image(&locked.image_id).await?.is_none() {
                    return Err(missing(format!(
                        "the locked image {} is not in the engine",
                        locked.image_id
                    )));
                }
                let (tag, id) = (locked.tag.clone(), locked.image_id.clone());
                (tag, id, Source::Local, local_prefix, true)
            }
        }
    };
    let found = image_glibc(engine, &image_id).await?;
    if found > glibc {
        return Err(BuilderError::GlibcTooNew {
            image: reference,
            found,
            requested: glibc,
        });
    }
    Ok(ResolvedBuilder {
        requested: glibc,
        found,
        reference,
        image_id,
        source,
        python_prefix,
        shared_libpython: shared,
    })
}

fn local_hint(catalog: &Catalog) -> String {
    let local: Vec<String> = catalog
        .local_baselines()
        .iter()
        .map(|g| g.to_string())
        .collect();
    format!(
        "no registry is reachable from here? `hermetic images build --glibc <{}>` makes a local builder from Debian's mirror",
        local.join("|")
    )
}

/// Reads the glibc version inside an image from its `libc.so.6`.
pub async fn image_glibc(engine: &Engine, image_id: &str) -> Result<Glibc, BuilderError> {
    let spec = ContainerSpec {
        image: image_id.to_string(),
        build_id: format!("probe-{}", std::process::id()),
        role: "probe".into(),
        network: Network::None,
        hardened: true,
        env: vec![],
        user: None,
    };
    let container = engine.create_container(&spec).await?;
    let mut result = Err(BuilderError::NoLibc {
        image: image_id.to_string(),
    });
    for path in LIBC_PATHS {
        match container.read_file(path, 64 << 20).await {
            Ok(bytes) => {
                result = crate::elf::reader::glibc_version_of_libc(Path::new(path), &bytes)
                    .map(|(major, minor)| Glibc::new(major, minor))
                    .map_err(|e| BuilderError::Libc {
                        image: image_id.to_string(),
                        path: path.to_string(),
                        reason: e.to_string(),
                    });
                break;
            }
            Err(EngineError::PathNotFound { .. }) => continue,
            Err(e) => {
                result = Err(e.into());
                break;
            }
        }
    }
    container.remove().await;
    result
}

/// Every catalog image with its presence in the engine.
pub async fn list(engine: &Engine) -> Result<Vec<ListedImage>, BuilderError> {
    let catalog = Catalog::embedded()?;
    let lock = Lock::load(&paths::image_lock())?;
    let mut rows = Vec::new();
    for b in &catalog.builder {
        let row = match b.source {
            Source::Upstream => {
                let reference = b.reference.clone().unwrap_or_default();
                let info = engine.inspect_image(&reference).await?;
                ListedImage {
                    role: "builder",
                    glibc: b.glibc,
                    source: b.source,
                    suite: None,
                    reference: Some(reference),
                    present: info.is_some(),
                    image_id: info.map(|i| i.id),
                    stale: false,
                }
            }
            Source::Local => {
                let locked = lock.builders.get(&b.glibc.to_string());
                ListedImage {
                    role: "builder",
                    glibc: b.glibc,
                    source: b.source,
                    suite: b.suite.clone(),
                    reference: locked.map(|l| l.tag.clone()),
                    image_id: locked.map(|l| l.image_id.clone()),
                    present: is_present(engine, locked).await?,
                    stale: locked.is_some_and(|l| l.inputs_hash != catalog.builder_inputs_hash(b)),
                }
            }
        };
        rows.push(row);
    }
    for r in &catalog.runtime {
        let locked = lock.bases.get(&r.suite);
        rows.push(ListedImage {
            role: "runtime",
            glibc: r.glibc,
            source: Source::Local,
            suite: Some(r.suite.clone()),
            reference: locked.map(|l| l.tag.clone()),
            image_id: locked.map(|l| l.image_id.clone()),
            present: is_present(engine, locked).await?,
            stale: locked.is_some_and(|l| l.inputs_hash != catalog.base_inputs_hash(&r.suite)),
        });
    }
    Ok(rows)
}

async fn is_present(engine: &Engine, locked: Option<&LockedImage>) -> Result<bool, BuilderError> {
    Ok(match locked {
        Some(l) => engine.inspect_image(&l.image_id).await?.is_some(),
        None => false,
    })
}

/// The image of a suite's runtime base, if it has been made.
pub async fn runtime_base(engine: &Engine, suite: &str) -> Result<LockedImage, BuilderError> {
    Catalog::embedded()?.runtime(suite)?;
    let lock = Lock::load(&paths::image_lock())?;
    match lock.bases.get(suite) {
        Some(l) if engine.inspect_image(&l.image_id).await?.is_some() => Ok(l.clone()),
        _ => Err(BuilderError::BaseMissing {
            suite: suite.to_string(),
        }),
    }
}

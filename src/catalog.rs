//! The builder image catalog (`images/catalog.toml`, embedded), the lock file
//! of locally built images, and the operations on them: build a local
//! builder or base, list what is present, resolve the builder for a baseline,
//! and check the glibc actually inside an image.
//!
//! Data flow for `hermetic images build --glibc 2.31`: catalog entry ->
//! inputs hash (catalog data + Dockerfile bytes) -> if the lock file already
//! names an image with that hash and the engine has it, done; otherwise
//! mmdebstrap a minbase rootfs from Debian's mirror, import it, build the
//! Dockerfile on top, and record the resulting image ID in the lock file.
//! Later builds use exactly that image ID.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tracing::{info, instrument};

use crate::engine::{BuildImageSpec, ContainerSpec, Engine, EngineError, Network};
use crate::{paths, progress};

/// The catalog, as shipped.
const CATALOG_TOML: &str = include_str!("../images/catalog.toml");
/// The local builder's Dockerfile, as shipped.
const BUILDER_DOCKERFILE: &str = include_str!("../Dockerfiles/builder-debian.Dockerfile");
/// Bumped when the way local images are made changes, to invalidate caches.
const LOCAL_IMAGE_FORMAT: u32 = 1;

/// Where libc may live inside an image (Debian multiarch, then RHEL-style).
const LIBC_PATHS: &[&str] = &[
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/lib64/libc.so.6",
    "/usr/lib64/libc.so.6",
];

/// A glibc version such as 2.31: the baseline a bundle targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Glibc {
    pub major: u32,
    pub minor: u32,
}

impl FromStr for Glibc {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CatalogError::BadBaseline {
            value: s.to_string(),
        };
        let (major, minor) = s.trim().split_once('.').ok_or_else(bad)?;
        let major: u32 = major.parse().map_err(|_| bad())?;
        let minor: u32 = minor.parse().map_err(|_| bad())?;
        if major != 2 {
            return Err(bad());
        }
        Ok(Glibc { major, minor })
    }
}

impl TryFrom<String> for Glibc {
    type Error = CatalogError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Glibc> for String {
    fn from(g: Glibc) -> String {
        g.to_string()
    }
}

impl fmt::Display for Glibc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The whole catalog file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub format: u32,
    pub local: LocalConfig,
    pub builder: Vec<BuilderEntry>,
    pub runtime: Vec<RuntimeEntry>,
}

/// How local images are made.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    pub mirror: String,
    pub source_date_epoch: u64,
    pub dockerfile: String,
    pub python: PythonSource,
}

/// The pinned CPython source tarball local builders compile.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PythonSource {
    pub version: String,
    pub url: String,
    pub sha256: String,
}

impl PythonSource {
    /// `cp311-cp311` for 3.11.x.
    pub fn abi_tag(&self) -> String {
        let mut parts = self.version.split('.');
        let major = parts.next().unwrap_or("3");
        let minor = parts.next().unwrap_or("0");
        format!("cp{major}{minor}-cp{major}{minor}")
    }
}

/// Where a builder comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Pulled from a registry, pinned by digest.
    Upstream,
    /// Built on this machine from Debian's mirror.
    Local,
}

/// One builder in the catalog.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BuilderEntry {
    pub glibc: Glibc,
    pub source: Source,
    /// Upstream: `name@sha256:<digest>`.
    pub reference: Option<String>,
    /// Local: the Debian suite.
    pub suite: Option<String>,
    /// Upstream: where its (static) CPython lives.
    pub python_prefix: Option<String>,
}

/// One clean runtime base (Debian minbase, no Python).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeEntry {
    pub suite: String,
    pub glibc: Glibc,
}

impl Catalog {
    /// The catalog embedded in this binary.
    pub fn embedded() -> Result<Catalog, CatalogError> {
        let catalog: Catalog = toml::from_str(CATALOG_TOML).map_err(|e| CatalogError::Invalid {
            reason: e.to_string(),
        })?;
        for b in &catalog.builder {
            match b.source {
                Source::Upstream if b.reference.is_none() => {
                    return Err(CatalogError::Invalid {
                        reason: format!("upstream builder {} has no reference", b.glibc),
                    });
                }
                Source::Local if b.suite.is_none() => {
                    return Err(CatalogError::Invalid {
                        reason: format!("local builder {} has no suite", b.glibc),
                    });
                }
                _ => {}
            }
        }
        Ok(catalog)
    }

    /// The builder for a baseline.
    pub fn builder(&self, glibc: Glibc) -> Result<&BuilderEntry, CatalogError> {
        self.builder
            .iter()
            .find(|b| b.glibc == glibc)
            .ok_or_else(|| CatalogError::UnknownBaseline {
                glibc,
                known: self.builder.iter().map(|b| b.glibc.to_string()).collect(),
            })
    }

    /// Baselines with a local builder, for hints.
    pub fn local_baselines(&self) -> Vec<Glibc> {
        self.builder
            .iter()
            .filter(|b| b.source == Source::Local)
            .map(|b| b.glibc)
            .collect()
    }

    /// The runtime base for a suite.
    pub fn runtime(&self, suite: &str) -> Result<&RuntimeEntry, CatalogError> {
        self.runtime
            .iter()
            .find(|r| r.suite == suite)
            .ok_or_else(|| CatalogError::UnknownSuite {
                suite: suite.to_string(),
                known: self.runtime.iter().map(|r| r.suite.clone()).collect(),
            })
    }

    /// The newest runtime base: the "different, newer distro" smoke tests use.
    pub fn newest_runtime(&self) -> Option<&RuntimeEntry> {
        self.runtime.iter().max_by_key(|r| r.glibc)
    }

    /// Cache key of a suite's base rootfs.
    pub fn base_inputs_hash(&self, suite: &str) -> String {
        let inputs = serde_json::json!({
            "format": LOCAL_IMAGE_FORMAT,
            "tool": "mmdebstrap",
            "variant": "minbase",
            "suite": suite,
            "mirror": self.local.mirror,
            "source_date_epoch": self.local.source_date_epoch,
        });
        crate::archive::sha256_bytes(inputs.to_string().as_bytes())
    }

    /// Cache key of a local builder: everything that goes into it.
    pub fn builder_inputs_hash(&self, entry: &BuilderEntry) -> String {
        let suite = entry.suite.as_deref().unwrap_or_default();
        let inputs = serde_json::json!({
            "format": LOCAL_IMAGE_FORMAT,
            "glibc": entry.glibc,
            "base": self.base_inputs_hash(suite),
            "local": self.local,
            "dockerfile_sha256": crate::archive::sha256_bytes(BUILDER_DOCKERFILE.as_bytes()),
        });
        crate::archive::sha256_bytes(inputs.to_string().as_bytes())
    }
}

/// The lock file: the exact image IDs of locally made images.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Lock {
    #[serde(default)]
    pub builders: BTreeMap<String, LockedImage>,
    #[serde(default)]
    pub bases: BTreeMap<String, LockedImage>,
}

/// One locally made image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedImage {
    pub tag: String,
    pub image_id: String,
    pub inputs_hash: String,
}

impl Lock {
    /// Reads the lock file; a missing file is an empty lock.
    pub fn load(path: &Path) -> Result<Lock, CatalogError> {
        match fs_err::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| CatalogError::BadLock {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lock::default()),
            Err(e) => Err(CatalogError::Io(e)),
        }
    }

    /// Writes the lock file atomically.
    pub fn save(&self, path: &Path) -> Result<(), CatalogError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        fs_err::create_dir_all(dir)?;
        let mut text = serde_json::to_string_pretty(self).map_err(|e| CatalogError::Invalid {
            reason: e.to_string(),
        })?;
        text.push('\n');
        let tmp = tempfile::NamedTempFile::new_in(dir)?;
        fs_err::write(tmp.path(), text)?;
        tmp.persist(path).map_err(|e| CatalogError::Io(e.error))?;
        Ok(())
    }
}

/// A local image that is ready (freshly built or cached).
#[derive(Debug, Clone, Serialize)]
pub struct ReadyImage {
    pub tag: String,
    pub image_id: String,
    pub inputs_hash: String,
    /// True when nothing had to be built.
    pub cached: bool,
    pub elapsed_ms: u64,
}

/// The builder chosen for a baseline, checked.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedBuilder {
    pub requested: Glibc,
    /// The glibc found inside the image (≤ requested).
    pub found: Glibc,
    /// The pinned reference (`name@sha256:…`) or local tag.
    pub reference: String,
    /// The exact image ID containers are created from.
    pub image_id: String,
    pub source: Source,
    /// Prefix of the CPython the bundle's runtime is taken from.
    pub python_prefix: String,
    /// Whether that CPython has a shared libpython.
    pub shared_libpython: bool,
}

/// One row of `hermetic images list`.
#[derive(Debug, Clone, Serialize)]
pub struct ListedImage {
    pub role: &'static str,
    pub glibc: Glibc,
    pub source: Source,
    pub suite: Option<String>,
    pub reference: Option<String>,
    pub image_id: Option<String>,
    pub present: bool,
    /// Local images: the lock entry is stale (inputs changed since built).
    pub stale: bool,
}

/// Makes (or finds cached) the local builder for `glibc`.
#[instrument(skip_all, fields(glibc = %glibc))]
pub async fn build_local_builder(
    engine: &Engine,
    glibc: Glibc,
    force: bool,
) -> Result<ReadyImage, CatalogError> {
    let started = Instant::now();
    let catalog = Catalog::embedded()?;
    let entry = catalog.builder(glibc)?;
    let suite = match (entry.source, entry.suite.as_deref()) {
        (Source::Local, Some(suite)) => suite.to_string(),
        _ => {
            return Err(CatalogError::NotLocal {
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
    let mut lock = Lock::load(&lock_path)?;
    if !force
        && let Some(ready) = cached(
            engine,
            lock.builders.get(&glibc.to_string()),
            &tag,
            &inputs_hash,
        )
        .await?
    {
        lock.builders.insert(glibc.to_string(), ready.clone());
        lock.save(&lock_path)?;
        return Ok(ReadyImage {
            tag: ready.tag,
            image_id: ready.image_id,
            inputs_hash,
            cached: true,
            elapsed_ms: ms(started),
        });
    }
    let base = ensure_base(engine, &suite, force).await?;
    let context = builder_context()?;
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
    record_built(
        &lock_path,
        |lock| &mut lock.builders,
        glibc.to_string(),
        locked,
        started,
    )
}

/// Makes (or finds cached) the minbase image of a Debian suite.
#[instrument(skip_all, fields(suite = %suite))]
pub async fn ensure_base(
    engine: &Engine,
    suite: &str,
    force: bool,
) -> Result<ReadyImage, CatalogError> {
    let started = Instant::now();
    let catalog = Catalog::embedded()?;
    if !catalog.runtime.iter().any(|r| r.suite == suite)
        && !catalog
            .builder
            .iter()
            .any(|b| b.suite.as_deref() == Some(suite))
    {
        catalog.runtime(suite)?;
    }
    let inputs_hash = catalog.base_inputs_hash(suite);
    let tag = engine
        .kind()
        .local_image_name(&format!("hermetic/base:{suite}-{}", &inputs_hash[..12]));
    let lock_path = paths::image_lock();
    let mut lock = Lock::load(&lock_path)?;
    if !force && let Some(ready) = cached(engine, lock.bases.get(suite), &tag, &inputs_hash).await?
    {
        lock.bases.insert(suite.to_string(), ready.clone());
        lock.save(&lock_path)?;
        return Ok(ReadyImage {
            tag: ready.tag,
            image_id: ready.image_id,
            inputs_hash,
            cached: true,
            elapsed_ms: ms(started),
        });
    }
    let rootfs = ensure_rootfs(suite, force).await?;
    let tarball = rootfs.path;
    let changes = vec!["CMD [\"/bin/bash\"]".to_string()];
    let image_id = engine.import_rootfs(&tarball, &tag, &changes).await?;
    let locked = LockedImage {
        tag,
        image_id,
        inputs_hash,
    };
    record_built(
        &lock_path,
        |lock| &mut lock.bases,
        suite.to_string(),
        locked,
        started,
    )
}

/// Records a freshly built image in the lock file (re-read first: another
/// hermetic may have recorded something meanwhile) and reports it.
fn record_built(
    lock_path: &Path,
    table: impl FnOnce(&mut Lock) -> &mut BTreeMap<String, LockedImage>,
    key: String,
    locked: LockedImage,
    started: Instant,
) -> Result<ReadyImage, CatalogError> {
    let mut lock = Lock::load(lock_path)?;
    table(&mut lock).insert(key, locked.clone());
    lock.save(lock_path)?;
    Ok(ReadyImage {
        tag: locked.tag,
        image_id: locked.image_id,
        inputs_hash: locked.inputs_hash,
        cached: false,
        elapsed_ms: ms(started),
    })
}

/// A suite's minbase rootfs tarball, kept on the host: the base layer of
/// `hermetic image` and the source of the base image. Pinned by its SHA-256
/// (mmdebstrap output is bit-identical for the same epoch and packages).
#[derive(Debug, Clone, Serialize)]
pub struct RootfsTarball {
    pub suite: String,
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub glibc: Glibc,
}

/// Makes (or finds) the rootfs tarball of a suite. Needs no engine.
pub async fn ensure_rootfs(suite: &str, force: bool) -> Result<RootfsTarball, CatalogError> {
    let catalog = Catalog::embedded()?;
    let glibc = catalog
        .runtime
        .iter()
        .find(|r| r.suite == suite)
        .map(|r| r.glibc)
        .or_else(|| {
            catalog
                .builder
                .iter()
                .find(|b| b.suite.as_deref() == Some(suite))
                .map(|b| b.glibc)
        })
        .ok_or_else(|| CatalogError::UnknownSuite {
            suite: suite.to_string(),
            known: catalog.runtime.iter().map(|r| r.suite.clone()).collect(),
        })?;
    let key = catalog.base_inputs_hash(suite);
    let dir = paths::home().join("rootfs");
    fs_err::create_dir_all(&dir)?;
    let path = dir.join(format!("{suite}-{}.tar", &key[..12]));
    let sum_path = path.with_extension("tar.sha256");
    if !force
        && path.is_file()
        && let Ok(recorded) = fs_err::read_to_string(&sum_path)
    {
        let (sha256, size) = crate::archive::sha256_file(&path)?;
        if recorded.trim() == sha256 {
            return Ok(RootfsTarball {
                suite: suite.to_string(),
                path,
                sha256,
                size,
                glibc,
            });
        }
        tracing::warn!(path = %path.display(), "cached rootfs does not match its recorded hash; remaking it");
    }
    let tmp = tempfile::Builder::new()
        .prefix(".rootfs-")
        .suffix(".tar")
        .tempfile_in(&dir)?;
    let log = paths::log_dir().join(format!("rootfs-{suite}.log"));
    make_rootfs(suite, &catalog.local, tmp.path(), &log).await?;
    let (sha256, size) = crate::archive::sha256_file(tmp.path())?;
    tmp.persist(&path).map_err(|e| CatalogError::Io(e.error))?;
    fs_err::write(&sum_path, format!("{sha256}\n"))?;
    Ok(RootfsTarball {
        suite: suite.to_string(),
        path,
        sha256,
        size,
        glibc,
    })
}

/// The lock entry if it is current and its image is present; else an image
/// tagged with the current inputs hash (e.g. built before the lock was lost).
async fn cached(
    engine: &Engine,
    locked: Option<&LockedImage>,
    tag: &str,
    inputs_hash: &str,
) -> Result<Option<LockedImage>, CatalogError> {
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

/// Runs mmdebstrap (or debootstrap when mmdebstrap is missing) on the host
/// to write a minbase rootfs tarball of `suite`.
async fn make_rootfs(
    suite: &str,
    local: &LocalConfig,
    tarball: &Path,
    log: &Path,
) -> Result<(), CatalogError> {
    if let Some(dir) = log.parent() {
        fs_err::create_dir_all(dir)?;
    }
    let log_file = fs_err::File::create(log)?;
    let phase = progress::Phase::start(
        "rootfs",
        format!("mmdebstrap {suite} from {}", local.mirror),
    );
    let status = if which("mmdebstrap") {
        tokio::process::Command::new("mmdebstrap")
            .env("SOURCE_DATE_EPOCH", local.source_date_epoch.to_string())
            .args(["--variant=minbase", "--mode=auto", "--format=tar", suite])
            .arg(tarball)
            .arg(&local.mirror)
            .stdout(log_file.try_clone()?.into_parts().0)
            .stderr(log_file.into_parts().0)
            .status()
            .await
    } else if which("debootstrap") {
        let dir = tarball.with_extension("d");
        let status = tokio::process::Command::new("debootstrap")
            .env("SOURCE_DATE_EPOCH", local.source_date_epoch.to_string())
            .args(["--variant=minbase", suite])
            .arg(&dir)
            .arg(&local.mirror)
            .stdout(log_file.try_clone()?.into_parts().0)
            .stderr(log_file.into_parts().0)
            .status()
            .await?;
        if status.success() {
            let tarred = tokio::process::Command::new("tar")
                .args([
                    "--sort=name",
                    "--numeric-owner",
                    &format!("--mtime=@{}", local.source_date_epoch),
                    "-C",
                ])
                .arg(&dir)
                .arg("-cf")
                .arg(tarball)
                .arg(".")
                .status()
                .await;
            let _ = fs_err::remove_dir_all(&dir);
            tarred
        } else {
            Ok(status)
        }
    } else {
        return Err(CatalogError::NoBootstrapTool);
    };
    phase.finish();
    let status = status?;
    if !status.success() {
        return Err(CatalogError::Rootfs {
            suite: suite.to_string(),
            log: log.to_path_buf(),
            status: status.to_string(),
        });
    }
    Ok(())
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// The build context of the local builder: just its Dockerfile.
fn builder_context() -> Result<tempfile::NamedTempFile, CatalogError> {
    let catalog = Catalog::embedded()?;
    let tmp = tempfile::NamedTempFile::new()?;
    let mut builder = tar::Builder::new(tmp.reopen()?);
    let mut header = tar::Header::new_gnu();
    header.set_size(BUILDER_DOCKERFILE.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(
        &mut header,
        &catalog.local.dockerfile,
        BUILDER_DOCKERFILE.as_bytes(),
    )?;
    builder.finish()?;
    Ok(tmp)
}

/// Chooses the builder for a baseline (or checks the one given with
/// `--builder-image`), makes sure it is present, and checks the glibc
/// inside it is not newer than the baseline.
#[instrument(skip_all, fields(glibc = %glibc))]
pub async fn resolve_builder(
    engine: &Engine,
    glibc: Glibc,
    image_override: Option<&str>,
) -> Result<ResolvedBuilder, CatalogError> {
    let catalog = Catalog::embedded()?;
    let hint = local_hint(&catalog);
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
        let prefix = format!("/opt/python/{}", catalog.local.python.abi_tag());
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
        (
            reference,
            info.id,
            if local {
                Source::Local
            } else {
                Source::Upstream
            },
            prefix,
            local,
        )
    } else {
        let entry = catalog.builder(glibc)?;
        match entry.source {
            Source::Upstream => {
                let reference = entry.reference.clone().unwrap_or_default();
                let info = engine.ensure_pinned(&reference, Some(hint)).await?;
                (
                    reference,
                    info.id,
                    Source::Upstream,
                    entry.python_prefix.clone().unwrap_or_default(),
                    false,
                )
            }
            Source::Local => {
                let lock = Lock::load(&paths::image_lock())?;
                let missing = || CatalogError::LocalMissing {
                    glibc,
                    reason: "no local builder has been built".into(),
                };
                let locked = lock.builders.get(&glibc.to_string()).ok_or_else(missing)?;
                if locked.inputs_hash != catalog.builder_inputs_hash(entry) {
                    return Err(CatalogError::LocalMissing {
                        glibc,
                        reason: format!(
                            "the local builder {} was made from older inputs",
                            locked.tag
                        ),
                    });
                }
                if engine.inspect_image(&locked.image_id).await?.is_none() {
                    return Err(CatalogError::LocalMissing {
                        glibc,
                        reason: format!(
                            "the locked image {} is not in the engine",
                            locked.image_id
                        ),
                    });
                }
                let prefix = format!("/opt/python/{}", catalog.local.python.abi_tag());
                (
                    locked.tag.clone(),
                    locked.image_id.clone(),
                    Source::Local,
                    prefix,
                    true,
                )
            }
        }
    };
    let found = image_glibc(engine, &image_id).await?;
    if found > glibc {
        return Err(CatalogError::GlibcTooNew {
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
pub async fn image_glibc(engine: &Engine, image_id: &str) -> Result<Glibc, CatalogError> {
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
    let mut result = Err(CatalogError::NoLibc {
        image: image_id.to_string(),
    });
    for path in LIBC_PATHS {
        match container.read_file(path, 64 << 20).await {
            Ok(bytes) => {
                result = crate::elf::reader::glibc_version_of_libc(Path::new(path), &bytes)
                    .map(|(major, minor)| Glibc { major, minor })
                    .map_err(|e| CatalogError::Libc {
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
pub async fn list(engine: &Engine) -> Result<Vec<ListedImage>, CatalogError> {
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
                let present = match locked {
                    Some(l) => engine.inspect_image(&l.image_id).await?.is_some(),
                    None => false,
                };
                ListedImage {
                    role: "builder",
                    glibc: b.glibc,
                    source: b.source,
                    suite: b.suite.clone(),
                    reference: locked.map(|l| l.tag.clone()),
                    image_id: locked.map(|l| l.image_id.clone()),
                    present,
                    stale: locked.is_some_and(|l| l.inputs_hash != catalog.builder_inputs_hash(b)),
                }
            }
        };
        rows.push(row);
    }
    for r in &catalog.runtime {
        let locked = lock.bases.get(&r.suite);
        let present = match locked {
            Some(l) => engine.inspect_image(&l.image_id).await?.is_some(),
            None => false,
        };
        rows.push(ListedImage {
            role: "runtime",
            glibc: r.glibc,
            source: Source::Local,
            suite: Some(r.suite.clone()),
            reference: locked.map(|l| l.tag.clone()),
            image_id: locked.map(|l| l.image_id.clone()),
            present,
            stale: locked.is_some_and(|l| l.inputs_hash != catalog.base_inputs_hash(&r.suite)),
        });
    }
    Ok(rows)
}

/// The image ID of a suite's runtime base, if it has been made.
pub async fn runtime_base(engine: &Engine, suite: &str) -> Result<LockedImage, CatalogError> {
    let catalog = Catalog::embedded()?;
    catalog.runtime(suite)?;
    let lock = Lock::load(&paths::image_lock())?;
    match lock.bases.get(suite) {
        Some(l) if engine.inspect_image(&l.image_id).await?.is_some() => Ok(l.clone()),
        _ => Err(CatalogError::BaseMissing {
            suite: suite.to_string(),
        }),
    }
}

/// The distribution a builder with this glibc release is, for purl
/// qualifiers (`debian-11`, …); `linux` when the release is not one the
/// catalog's builders have.
pub fn distro_for_glibc(glibc: &str) -> &'static str {
    match glibc {
        "2.31" => "debian-11",
        "2.36" => "debian-12",
        "2.41" => "debian-13",
        "2.17" => "centos-7",
        "2.28" => "almalinux-8",
        "2.34" => "almalinux-9",
        _ => "linux",
    }
}

fn ms(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64
}

/// Errors about the builder image catalog and local images.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("invalid glibc baseline `{value}` (expected e.g. 2.31)")]
    BadBaseline { value: String },

    #[error("no builder for glibc {glibc} in the catalog (known baselines: {})", known.join(", "))]
    UnknownBaseline { glibc: Glibc, known: Vec<String> },

    #[error("no runtime base for suite `{suite}` (known: {})", known.join(", "))]
    UnknownSuite { suite: String, known: Vec<String> },

    #[error("the glibc {glibc} builder is an upstream image, not one made locally")]
    NotLocal { glibc: Glibc, local: Vec<Glibc> },

    #[error("local builder for glibc {glibc} is not available: {reason}")]
    LocalMissing { glibc: Glibc, reason: String },

    #[error("runtime base image for {suite} has not been made")]
    BaseMissing { suite: String },

    #[error("image {image} has glibc {found}, newer than the requested baseline {requested}")]
    GlibcTooNew {
        image: String,
        found: Glibc,
        requested: Glibc,
    },

    #[error("no libc.so.6 found in image {image}")]
    NoLibc { image: String },

    #[error("cannot read the glibc version from {path} in image {image}: {reason}")]
    Libc {
        image: String,
        path: String,
        reason: String,
    },

    #[error("neither mmdebstrap nor debootstrap is installed")]
    NoBootstrapTool,

    #[error("making the {suite} rootfs failed ({status}); see {}", log.display())]
    Rootfs {
        suite: String,
        log: PathBuf,
        status: String,
    },

    #[error("the image catalog is invalid: {reason}")]
    Invalid { reason: String },

    #[error("lock file {} is unreadable: {reason}", path.display())]
    BadLock { path: PathBuf, reason: String },

    #[error(transparent)]
    Engine(#[from] EngineError),

    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),

    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl CatalogError {
    /// A line the user can act on.
    pub fn help(&self) -> Option<String> {
        match self {
            CatalogError::LocalMissing { glibc, .. } => Some(format!("run `hermetic images build --glibc {glibc}`")),
            CatalogError::BaseMissing { suite } => Some(format!("run `hermetic images build --base {suite}`")),
            CatalogError::NotLocal { local, .. } => Some(format!(
                "local builders exist for glibc {}",
                local.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(", ")
            )),
            CatalogError::GlibcTooNew { .. } => Some(
                "pick a builder whose glibc is at most the baseline (`hermetic images list`), or raise --glibc".into(),
            ),
            CatalogError::NoBootstrapTool => Some("install one: `apt-get install mmdebstrap`".into()),
            CatalogError::Engine(e) => e.help(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_parses_and_pins_upstream_by_digest() {
        let c = Catalog::embedded().unwrap();
        for b in &c.builder {
            if b.source == Source::Upstream {
                crate::engine::split_pinned(b.reference.as_deref().unwrap()).unwrap();
            }
        }
        for g in ["2.17", "2.28", "2.31", "2.34", "2.36", "2.41"] {
            c.builder(g.parse().unwrap()).unwrap();
        }
        assert_eq!(c.local.python.abi_tag(), "cp311-cp311");
    }

    #[test]
    fn baselines_parse_and_order() {
        let a: Glibc = "2.28".parse().unwrap();
        let b: Glibc = "2.31".parse().unwrap();
        assert!(a < b);
        assert!("3.1".parse::<Glibc>().is_err());
        assert!("2".parse::<Glibc>().is_err());
        assert!("2.x".parse::<Glibc>().is_err());
    }

    #[test]
    fn inputs_hash_changes_with_suite() {
        let c = Catalog::embedded().unwrap();
        assert_ne!(
            c.base_inputs_hash("bullseye"),
            c.base_inputs_hash("bookworm")
        );
        let b31 = c.builder("2.31".parse().unwrap()).unwrap();
        let b36 = c.builder("2.36".parse().unwrap()).unwrap();
        assert_ne!(c.builder_inputs_hash(b31), c.builder_inputs_hash(b36));
    }
}

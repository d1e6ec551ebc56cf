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
use crate::catalog::{Catalog, PackageFamily, Source};
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
    /// Prefix of the CPython the bundle's runtime is taken from, as the
    /// builder names it (manylinux: `/opt/python/cp311-cp311`, a symlink).
    pub python_prefix: String,
    /// Where that CPython really is: the prefix with symlinks resolved, and
    /// the prefix it was configured with, when they differ from the above.
    /// The runtime is copied from the first; relocation and the leak scan
    /// look for all of them.
    pub python_real_prefixes: Vec<String>,
    /// The interpreter's own version (`3.11.2`), asked of it.
    pub python_version: String,
    /// Whether that CPython has a shared libpython (its `Py_ENABLE_SHARED`).
    pub shared_libpython: bool,
    /// The package manager family found in the image (apt: deb; dnf or
    /// yum: rpm); `None` when it has none of them.
    pub package_family: Option<PackageFamily>,
    /// Local builders: the catalog inputs hash it was made from (its
    /// `io.hermetic.inputs-hash` label), which a record pins it by.
    pub inputs_hash: Option<String>,
    /// Local builders: its Debian packages, name -> version (from the lock,
    /// else asked of dpkg inside it).
    pub packages: std::collections::BTreeMap<String, String>,
}

impl ResolvedBuilder {
    /// The real directory the runtime is copied from.
    pub fn python_install_dir(&self) -> &str {
        self.python_real_prefixes
            .first()
            .map_or(self.python_prefix.as_str(), String::as_str)
    }

    /// Every name of the interpreter's prefix, the builder's first.
    pub fn python_prefixes(&self) -> Vec<String> {
        std::iter::once(self.python_prefix.clone())
            .chain(self.python_real_prefixes.iter().cloned())
            .collect()
    }
}

/// What the builder's interpreter says about itself.
#[derive(Debug, Clone, serde::Deserialize)]
struct PythonProbe {
    prefix: String,
    realpath: String,
    configured: String,
    version: String,
    shared: bool,
    /// Not the interpreter's answer: the shell's, before it.
    #[serde(skip)]
    family: Option<PackageFamily>,
}

/// Asks the interpreter of each candidate prefix, in order, for its real
/// prefix, version and libpython kind; the first that exists wins.
const PROBE_SCRIPT: &str = r#"import json, os, platform, sys, sysconfig
print(json.dumps({"prefix": sys.argv[1], "realpath": os.path.realpath(sys.argv[1]),
  "configured": sysconfig.get_config_var("prefix") or "", "version": platform.python_version(),
  "shared": bool(sysconfig.get_config_var("Py_ENABLE_SHARED"))}))"#;

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
    /// `shipped`, or the user catalog file the entry comes from.
    pub origin: String,
    /// Builders: `distro` (the suite's glibc is the baseline) or
    /// `toolchain` (zig targets the baseline).
    pub kind: crate::catalog::Kind,
}

/// Chooses the builder for a baseline (or checks the one given with
/// `--builder-image`; `only_source` is `--builder-source`), makes sure it
/// is present, and checks the glibc inside it is not newer than the
/// baseline.
#[instrument(skip_all, fields(glibc = %glibc))]
pub async fn resolve_builder(
    engine: &Engine,
    glibc: Glibc,
    image_override: Option<&str>,
    only_source: Option<Source>,
    python_exe: Option<&str>,
) -> Result<ResolvedBuilder, BuilderError> {
    let catalog = Catalog::active()?;
    let Chosen {
        reference,
        image_id,
        source,
        python_prefix,
        catalog_says_shared,
        catalog_family,
    } = match image_override {
        Some(image) => chosen_by_user(engine, catalog, image).await?,
        None => chosen_from_catalog(engine, catalog, glibc, only_source).await?,
    };
    // Outputs name hermetic's own images the same way on every engine.
    let reference = match source {
        Source::Local => engine.kind().portable_name(&reference),
        Source::Upstream => reference,
    };
    let found = image_glibc(engine, &image_id).await?;
    let (inputs_hash, packages) = match source {
        Source::Local => local_facts(engine, &image_id, &reference).await?,
        Source::Upstream => (None, Default::default()),
    };
    // A toolchain builder targets an older glibc than its distro's; the
    // claim was audited when the image was made (see the lock).
    let toolchain = toolchain_baseline(engine, &image_id)?;
    if found > glibc && toolchain != Some(glibc) {
        return Err(BuilderError::GlibcTooNew {
            image: reference,
            found,
            requested: glibc,
        });
    }
    // `hermetic exec` runs any command and needs no interpreter: the
    // catalog's word stands then.
    let Some(python_exe) = python_exe else {
        return Ok(ResolvedBuilder {
            requested: glibc,
            found,
            reference,
            image_id,
            source,
            python_prefix,
            python_real_prefixes: Vec::new(),
            python_version: String::new(),
            shared_libpython: catalog_says_shared,
            package_family: catalog_family,
            inputs_hash,
            packages,
        });
    };
    // Where the interpreter is: the catalog's prefix first, then the
    // manylinux convention (an image given with --builder-image may be
    // either kind).
    let abi = python_exe.trim_start_matches("python").replace('.', "");
    let mut candidates: Vec<String> = Some(python_prefix)
        .filter(|p| !p.is_empty())
        .into_iter()
        .collect();
    let manylinux = format!("/opt/python/cp{abi}-cp{abi}");
    if !candidates.contains(&manylinux) {
        candidates.push(manylinux);
    }
    let probe = probe_python(engine, &image_id, &reference, &candidates, python_exe).await?;
    let mut real = Vec::new();
    for p in [&probe.realpath, &probe.configured] {
        if !p.is_empty() && *p != probe.prefix && !real.contains(p) {
            real.push(p.clone());
        }
    }
    Ok(ResolvedBuilder {
        requested: glibc,
        found,
        reference,
        image_id,
        source,
        python_prefix: probe.prefix,
        python_real_prefixes: real,
        python_version: probe.version,
        shared_libpython: probe.shared,
        package_family: probe.family,
        inputs_hash,
        packages,
    })
}

/// What a record pins a local builder by besides its ID: the inputs hash
/// on its label, and its package versions (the lock's, or dpkg's answer
/// when the image came from elsewhere, e.g. `docker load`).
async fn local_facts(
    engine: &Engine,
    image_id: &str,
    reference: &str,
) -> Result<(Option<String>, std::collections::BTreeMap<String, String>), BuilderError> {
    let inputs_hash = engine
        .inspect_image(image_id)
        .await?
        .and_then(|i| i.labels.get("io.hermetic.inputs-hash").cloned());
    let lock = Lock::load(&paths::image_lock(&engine.lock_key()))?;
    if let Some(l) = lock
        .builders
        .values()
        .find(|l| l.image_id == image_id && !l.packages.is_empty())
    {
        return Ok((inputs_hash, l.packages.clone()));
    }
    let container = engine.create_container(&probe_spec(image_id)).await?;
    let out = container
        .exec(&crate::engine::ExecSpec::shell(
            "cat /var/lib/dpkg/status 2>/dev/null || true",
        ))
        .await;
    container.remove().await;
    let out = out?;
    if out.exit_code != 0 {
        return Err(BuilderError::Flatten {
            image: reference.to_string(),
            reason: format!("reading its dpkg status failed: {}", out.tail.join(" | ")),
        });
    }
    Ok((
        inputs_hash,
        super::flatten::dpkg_status_packages(&out.stdout),
    ))
}

/// The baseline a toolchain builder was audited for when it was made, from
/// the lock (`None` for every other image).
fn toolchain_baseline(engine: &Engine, image_id: &str) -> Result<Option<Glibc>, BuilderError> {
    let lock = Lock::load(&paths::image_lock(&engine.lock_key()))?;
    Ok(lock
        .builders
        .values()
        .find(|l| l.image_id == image_id)
        .and_then(|l| l.toolchain_glibc))
}

/// The image a build will run in, before it is checked.
struct Chosen {
    reference: String,
    image_id: String,
    source: Source,
    /// Where the catalog says its CPython is (the probe has the last word).
    python_prefix: String,
    /// Local builders are made with a shared libpython.
    catalog_says_shared: bool,
    /// The package family the catalog gives (the probe has the last word).
    catalog_family: Option<PackageFamily>,
}

/// `--builder-image`: pulled by digest, or found in the engine by name or ID.
async fn chosen_by_user(
    engine: &Engine,
    catalog: &Catalog,
    image: &str,
) -> Result<Chosen, BuilderError> {
    let hint = local_hint(catalog);
    let info = if image.contains('@') {
        match loaded_image(engine, image).await? {
            Some(info) => info,
            None => engine.ensure_pinned(image, Some(hint)).await?,
        }
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
    Ok(Chosen {
        reference,
        image_id: info.id,
        source: if local {
            Source::Local
        } else {
            Source::Upstream
        },
        python_prefix: catalog.local.python.prefix(),
        catalog_says_shared: local,
        catalog_family: local.then_some(PackageFamily::Deb),
    })
}

/// The catalog's default builder for the baseline; when that is an upstream
/// image no registry answers for, the baseline's local builder (made now if
/// it has not been). With `only`, that source's builder or an error.
async fn chosen_from_catalog(
    engine: &Engine,
    catalog: &Catalog,
    glibc: Glibc,
    only: Option<Source>,
) -> Result<Chosen, BuilderError> {
    let local = |(reference, image_id): (String, String)| Chosen {
        reference,
        image_id,
        source: Source::Local,
        python_prefix: catalog.local.python.prefix(),
        catalog_says_shared: true,
        catalog_family: Some(PackageFamily::Deb),
    };
    let entry = catalog.builder(glibc)?;
    let local_entry = catalog.local_builder(glibc);
    let not_in_catalog = |wanted: Source| BuilderError::NoSuchBuilder {
        glibc,
        wanted,
        baselines: catalog.baselines_with(wanted),
    };
    match only {
        Some(Source::Local) if local_entry.is_none() => {
            return Err(not_in_catalog(Source::Local));
        }
        Some(Source::Upstream) if entry.source != Source::Upstream => {
            return Err(not_in_catalog(Source::Upstream));
        }
        _ => {}
    }
    if entry.source == Source::Local || only == Some(Source::Local) {
        return Ok(local(local_or_make(engine, catalog, glibc).await?));
    }
    let reference = entry.reference.clone().unwrap_or_default();
    let pinned = match loaded_image(engine, &reference).await? {
        Some(info) => Ok(info),
        None => {
            engine
                .ensure_pinned(&reference, Some(local_hint(catalog)))
                .await
        }
    };
    match pinned {
        Ok(info) => Ok(Chosen {
            reference,
            image_id: info.id,
            source: Source::Upstream,
            python_prefix: entry.python_prefix.clone().unwrap_or_default(),
            catalog_says_shared: false,
            catalog_family: entry.package_family(),
        }),
        Err(e @ EngineError::ImageUnavailable { .. }) => {
            match local_entry.filter(|_| only.is_none()) {
                Some(fallback) => {
                    tracing::warn!(
                        "{reference} is unavailable ({e}); using the local {} builder for glibc \
                     {glibc}",
                        fallback.kind
                    );
                    Ok(local(local_or_make(engine, catalog, glibc).await?))
                }
                None => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// A pinned upstream image that `hermetic images load` checked against the
/// pin and recorded in the lock, when the engine still has it (a loaded
/// image has no registry digest for [`Engine::ensure_pinned`] to check).
async fn loaded_image(
    engine: &Engine,
    reference: &str,
) -> Result<Option<crate::engine::ImageInfo>, BuilderError> {
    let lock = Lock::load(&paths::image_lock(&engine.lock_key()))?;
    let Some(loaded) = lock.loaded.get(reference) else {
        return Ok(None);
    };
    let info = engine.inspect_image(&loaded.image_id).await?;
    if info.is_some() {
        tracing::info!(
            "{reference}: using the image loaded from {} ({} checked)",
            loaded.archive,
            loaded.checked
        );
    }
    Ok(info)
}

/// The baseline's local builder: the locked one, or, when it has not been
/// made on this engine (or is stale, or gone from it), made now, so a user's
/// first `hermetic build --glibc X` works without a separate `images build`
/// (an image already in the engine under its inputs-hash tag is reused).
async fn local_or_make(
    engine: &Engine,
    catalog: &Catalog,
    glibc: Glibc,
) -> Result<(String, String), BuilderError> {
    match locked_local(engine, catalog, glibc).await {
        Ok(found) => Ok(found),
        Err(BuilderError::LocalMissing { reason, .. }) => {
            tracing::debug!("{reason}: making it");
            let ready = super::make::make_local_builder(engine, glibc, false, true, None).await?;
            Ok((ready.tag, ready.image_id))
        }
        Err(other) => Err(other),
    }
}

/// The local builder of a baseline from the lock: current and present.
async fn locked_local(
    engine: &Engine,
    catalog: &Catalog,
    glibc: Glibc,
) -> Result<(String, String), BuilderError> {
    let missing = |reason: String| BuilderError::LocalMissing { glibc, reason };
    let entry = catalog
        .local_builder(glibc)
        .ok_or_else(|| missing("the catalog has no local builder for it".into()))?;
    let lock = Lock::load(&paths::image_lock(&engine.lock_key()))?;
    let locked = lock
        .builders
        .get(&glibc.to_string())
        .ok_or_else(|| missing(format!("no local {} builder has been built", entry.kind)))?;
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
    Ok((locked.tag.clone(), locked.image_id.clone()))
}

/// Runs [`PROBE_SCRIPT`] with the first candidate prefix that has the
/// interpreter, in an offline, hardened container.
async fn probe_python(
    engine: &Engine,
    image_id: &str,
    reference: &str,
    candidates: &[String],
    python_exe: &str,
) -> Result<PythonProbe, BuilderError> {
    let spec = probe_spec(image_id);
    let quoted: Vec<String> = candidates.iter().map(|c| crate::shell::quote(c)).collect();
    // The package manager first (the interpreter's JSON is the last line).
    let script = format!(
        "if command -v apt-get >/dev/null 2>&1; then echo {FAMILY_MARK}deb; \
         elif command -v dnf >/dev/null 2>&1 || command -v yum >/dev/null 2>&1; then echo {FAMILY_MARK}rpm; fi; \
         for p in {list}; do if [ -x \"$p/bin/{python_exe}\" ]; then exec \"$p/bin/{python_exe}\" -I -c {code} \"$p\"; fi; done; exit 3",
        list = quoted.join(" "),
        code = crate::shell::quote(PROBE_SCRIPT),
    );
    let container = engine.create_container(&spec).await?;
    let out = container
        .exec(&crate::engine::ExecSpec::shell(script))
        .await;
    container.remove().await;
    let out = out?;
    let no_python = |reason: String| BuilderError::NoPython {
        image: reference.to_string(),
        python: python_exe.to_string(),
        reason: format!("{reason} (looked under {})", candidates.join(", ")),
    };
    if out.exit_code == 3 {
        return Err(no_python("no such interpreter".into()));
    }
    if out.exit_code != 0 {
        return Err(no_python(format!(
            "it exited with {}: {}",
            out.exit_code,
            out.tail.join(" | ")
        )));
    }
    let line = out.stdout.lines().last().unwrap_or_default();
    let mut probe: PythonProbe = serde_json::from_str(line)
        .map_err(|e| no_python(format!("unreadable answer ({e}): {line}")))?;
    probe.family = out
        .stdout
        .lines()
        .find_map(|l| match l.strip_prefix(FAMILY_MARK)? {
            "deb" => Some(PackageFamily::Deb),
            "rpm" => Some(PackageFamily::Rpm),
            _ => None,
        });
    Ok(probe)
}

/// Starts the probe's line naming the image's package family.
const FAMILY_MARK: &str = "hermetic-package-family=";

/// A short-lived, offline, hardened container for asking an image a question.
fn probe_spec(image_id: &str) -> ContainerSpec {
    ContainerSpec {
        image: image_id.to_string(),
        build_id: format!("probe-{}", std::process::id()),
        role: "probe".into(),
        network: Network::None,
        hardened: true,
        env: vec![],
        user: None,
    }
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
    let spec = probe_spec(image_id);
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
    let catalog = Catalog::active()?;
    let lock = Lock::load(&paths::image_lock(&engine.lock_key()))?;
    let mut rows = Vec::new();
    for b in &catalog.builder {
        let row = match b.source {
            Source::Upstream => {
                let reference = b.reference.clone().unwrap_or_default();
                let info = match engine.inspect_image(&reference).await? {
                    Some(info) => Some(info),
                    None => loaded_image(engine, &reference).await?,
                };
                ListedImage {
                    role: "builder",
                    glibc: b.glibc,
                    source: b.source,
                    suite: None,
                    reference: Some(reference),
                    present: info.is_some(),
                    image_id: info.map(|i| i.id),
                    stale: false,
                    origin: b.origin.to_string(),
                    kind: b.kind,
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
                    origin: b.origin.to_string(),
                    kind: b.kind,
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
            origin: crate::catalog::Origin::Shipped.to_string(),
            kind: crate::catalog::Kind::Distro,
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
    Catalog::active()?.runtime(suite)?;
    let lock = Lock::load(&paths::image_lock(&engine.lock_key()))?;
    match lock.bases.get(suite) {
        Some(l) if engine.inspect_image(&l.image_id).await?.is_some() => Ok(l.clone()),
        // Not made on this engine yet: made now (an import of the cached
        // rootfs tarball, or a minute of mmdebstrap the first time).
        _ => {
            let ready = super::make::ensure_base(engine, suite, false).await?;
            Ok(LockedImage {
                tag: ready.tag,
                image_id: ready.image_id,
                inputs_hash: ready.inputs_hash,
                toolchain_glibc: None,
                packages: Default::default(),
            })
        }
    }
}

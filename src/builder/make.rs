//! Making local images: a suite's base image (its rootfs tarball as one
//! layer) and the local builder for a baseline (the builder Dockerfile
//! built on that base, then flattened). Both are written as reproducible
//! images by [`super::flatten`] and loaded into the engine, so their image
//! IDs depend on their files only. Both are cached by their catalog inputs
//! hash: found through the lock, or by the tag that carries the hash. The
//! package versions inside each are locked: a remake that would get other
//! versions is an error naming them.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde::Serialize;
use tracing::{info, instrument};

use super::flatten::{self, LayerSource, RunConfig};
use super::lock::{Lock, LockedImage};
use super::{BuilderError, download, ms, rootfs};
use crate::catalog::{
    BUILDER_DOCKERFILE, Catalog, Kind, TOOLCHAIN_CC, TOOLCHAIN_DOCKERFILE, TOOLCHAIN_LIBRARIES,
};
use crate::elf::audit::Finding;
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

/// Makes (or finds cached) the local builder for `glibc`: a distro builder
/// (the suite's glibc is the baseline) or a toolchain builder (zig targets
/// the baseline; its CPython is audited against it before it is accepted).
#[instrument(skip_all, fields(glibc = %glibc))]
pub async fn build_local_builder(
    engine: &Engine,
    glibc: Glibc,
    force: bool,
) -> Result<ReadyImage, BuilderError> {
    make_local_builder(engine, glibc, force, false, None).await
}

/// Package versions a make must reproduce, and where they were locked.
#[derive(Debug, Clone)]
pub struct Pins {
    /// `the image lock`, `the build record …`.
    pub against: String,
    /// name -> version.
    pub packages: BTreeMap<String, String>,
}

/// Makes the glibc builder a build record names, from its recorded catalog
/// inputs, on an engine that does not have it: the same inputs hash, the
/// recorded package versions, and in the end the recorded image ID, or an
/// error saying which of them differs.
#[instrument(skip_all, fields(glibc = %glibc))]
pub async fn remake_recorded(
    engine: &Engine,
    glibc: Glibc,
    inputs_hash: &str,
    image_id: &str,
    pins: Pins,
) -> Result<ReadyImage, BuilderError> {
    let catalog = Catalog::active()?;
    let current = catalog
        .local_builder(glibc)
        .map(|e| catalog.builder_inputs_hash(e))
        .unwrap_or_default();
    if current != inputs_hash {
        return Err(BuilderError::InputsMoved {
            glibc,
            recorded: inputs_hash.to_string(),
            current,
        });
    }
    let ready = make_local_builder(engine, glibc, false, false, Some(pins)).await?;
    if ready.image_id != image_id {
        return Err(BuilderError::RemadeDiffers {
            glibc,
            inputs_hash: inputs_hash.to_string(),
            expected: image_id.to_string(),
            got: ready.image_id,
        });
    }
    Ok(ready)
}

/// [`build_local_builder`]; `on_demand` when a build needs it and the user
/// did not ask for it, so a long image build is announced as a warning;
/// `pins` overrides the lock's package versions (a record's, for verify).
pub(super) async fn make_local_builder(
    engine: &Engine,
    glibc: Glibc,
    force: bool,
    on_demand: bool,
    pins: Option<Pins>,
) -> Result<ReadyImage, BuilderError> {
    let started = Instant::now();
    let catalog = Catalog::active()?;
    catalog.builder(glibc)?;
    let not_local = || BuilderError::NotLocal {
        glibc,
        local: catalog.local_baselines(),
    };
    let entry = catalog.local_builder(glibc).ok_or_else(not_local)?;
    let suite = entry.suite.clone().ok_or_else(not_local)?;
    let inputs_hash = catalog.builder_inputs_hash(entry);
    let tag = engine.kind().local_image_name(&format!(
        "hermetic/builder:glibc{glibc}-{}",
        &inputs_hash[..12]
    ));
    let lock_path = paths::image_lock(&engine.lock_key());
    let key = glibc.to_string();
    let lock = Lock::load(&lock_path)?;
    let pins = pins.or_else(|| lock_pins(lock.builders.get(&key), &inputs_hash));
    if !force
        && let Some(mut ready) = cached(engine, lock.builders.get(&key), &tag, &inputs_hash).await?
    {
        if entry.kind == Kind::Toolchain && ready.toolchain_glibc != Some(glibc) {
            ready.toolchain_glibc =
                Some(check_toolchain(engine, &ready.image_id, &tag, glibc).await?);
        }
        Lock::record(&lock_path, |l| &mut l.builders, key, ready.clone())?;
        return Ok(ready_image(ready, true, started));
    }
    let base = ensure_base(engine, &suite, force).await?;
    let python = &catalog.local.python;
    let mut build_args = HashMap::from([
        ("BASE".to_string(), base.image_id.clone()),
        ("PYTHON_VERSION".to_string(), python.version.clone()),
        ("PYTHON_URL".to_string(), python.url.clone()),
        ("PYTHON_SHA256".to_string(), python.sha256.clone()),
        (
            "SOURCE_DATE_EPOCH".to_string(),
            catalog.local.source_date_epoch.to_string(),
        ),
    ]);
    let (dockerfile, context) = match entry.kind {
        Kind::Distro => {
            let name = catalog.local.dockerfile.clone();
            let context = build_context(
                &[(name.as_str(), BUILDER_DOCKERFILE.as_bytes(), 0o644)],
                &[],
            )?;
            (name, context)
        }
        Kind::Toolchain => {
            let toolchain = &catalog.local.toolchain;
            let wheel = download::fetch_pinned(&toolchain.zig).await?;
            build_args.extend([
                ("TARGET_GLIBC".to_string(), glibc.to_string()),
                (
                    "ZIG_WHEEL".to_string(),
                    toolchain.zig.file_name().to_string(),
                ),
                ("ZIG_SHA256".to_string(), toolchain.zig.sha256.clone()),
                (
                    "LIBRARIES".to_string(),
                    toolchain
                        .libraries_for(glibc)
                        .iter()
                        .map(|l| l.build_arg())
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
            ]);
            let name = toolchain.dockerfile.clone();
            let context = build_context(
                &[
                    (name.as_str(), TOOLCHAIN_DOCKERFILE.as_bytes(), 0o644),
                    ("hermetic-cc", TOOLCHAIN_CC.as_bytes(), 0o755),
                    (
                        "hermetic-build-libraries",
                        TOOLCHAIN_LIBRARIES.as_bytes(),
                        0o755,
                    ),
                ],
                &[(toolchain.zig.file_name(), wheel.as_path())],
            )?;
            (name, context)
        }
    };
    let labels = HashMap::from([
        ("io.hermetic.inputs-hash".to_string(), inputs_hash.clone()),
        ("io.hermetic.glibc".to_string(), glibc.to_string()),
        ("io.hermetic.suite".to_string(), suite.clone()),
        ("io.hermetic.kind".to_string(), entry.kind.to_string()),
    ]);
    let log = paths::fresh_log(&format!("images-build-glibc{glibc}.log"));
    if on_demand {
        tracing::warn!(
            "glibc {glibc} needs the local {} builder, not yet made on this engine: building \
             {tag} now (minutes: CPython is compiled; `hermetic images build --glibc {glibc}` \
             does this ahead of time; log: {})",
            entry.kind,
            log.display()
        );
    } else {
        info!(
            "building local {} builder {tag} (log: {})",
            entry.kind,
            log.display()
        );
    }
    // The engine's build goes under a stage tag: its layers carry the
    // build's file times, so it is only the source of the flattened image
    // that gets the real tag, and is removed once that exists.
    let stage_tag = engine.kind().local_image_name(&format!(
        "hermetic/builder-stage:glibc{glibc}-{}",
        &inputs_hash[..12]
    ));
    let stage_id = engine
        .build_image(&BuildImageSpec {
            context_tar: context.path().to_path_buf(),
            dockerfile,
            tag: stage_tag.clone(),
            build_args,
            labels,
            log,
            no_cache: force,
        })
        .await?;
    let made = save_and_flatten(
        engine,
        &stage_id,
        &tag,
        catalog.local.source_date_epoch,
        &format!("hermetic images build --glibc {glibc} (catalog inputs {inputs_hash})"),
        pins.as_ref(),
    )
    .await;
    let _ = engine.remove_unused_image(&stage_tag).await;
    let (image_id, packages) = made?;
    let toolchain_glibc = match entry.kind {
        Kind::Distro => None,
        Kind::Toolchain => match check_toolchain(engine, &image_id, &tag, glibc).await {
            Ok(g) => Some(g),
            Err(e) => {
                // Not left under the tag a later run would find it by.
                let _ = engine.remove_unused_image(&tag).await;
                return Err(e);
            }
        },
    };
    let locked = LockedImage {
        tag,
        image_id,
        inputs_hash,
        toolchain_glibc,
        packages,
    };
    Lock::record(&lock_path, |l| &mut l.builders, key, locked.clone())?;
    Ok(ready_image(locked, false, started))
}

/// Collects a toolchain builder's CPython prefix, `/usr/local/lib` and the
/// distro libraries they load (what bundles vendor) and audits them against
/// the baseline the builder claims: only glibc symbol versions and
/// blacklisted symbols count (the libraries themselves are vendored).
async fn check_toolchain(
    engine: &Engine,
    image_id: &str,
    tag: &str,
    glibc: Glibc,
) -> Result<Glibc, BuilderError> {
    let catalog = Catalog::active()?;
    let prefix = catalog.local.python.prefix();
    let script = format!(
        r#"set -eu
out=/tmp/hermetic-toolchain-check
rm -rf "$out"; mkdir -p "$out/deps"
cp -a {prefix} "$out/python"
cp -a /usr/local/lib "$out/usr-local-lib"
find "$out/python" "$out/usr-local-lib" -type f \( -name '*.so*' -o -perm -u+x \) -print0 |
    xargs -0 -r ldd 2>/dev/null | awk '$3 ~ /^\// {{print $3}}' | sort -u |
    while read -r lib; do
        case "${{lib##*/}}" in
        libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|libutil.so.*|libresolv.so.*|libcrypt.so.*|libnsl.so.*|ld-linux*) ;;
        *) cp -L "$lib" "$out/deps/" ;;
        esac
    done
"#,
        prefix = crate::shell::quote(&prefix),
    );
    let spec = crate::engine::ContainerSpec {
        image: image_id.to_string(),
        build_id: format!("toolchain-check-{}", std::process::id()),
        role: "probe".into(),
        network: crate::engine::Network::None,
        hardened: true,
        env: vec![],
        user: None,
    };
    let container = engine.create_container(&spec).await?;
    let tar = tempfile::Builder::new().suffix(".tar").tempfile()?;
    let result = async {
        let out = container
            .exec(&crate::engine::ExecSpec::shell(script))
            .await?;
        if out.exit_code != 0 {
            return Err(BuilderError::ToolchainAudit {
                image: tag.to_string(),
                glibc,
                count: 0,
                first: vec![format!(
                    "collecting its files failed: {}",
                    out.tail.join(" | ")
                )],
            });
        }
        container
            .copy_out("/tmp/hermetic-toolchain-check", tar.path())
            .await?;
        Ok(())
    }
    .await;
    container.remove().await;
    result?;
    let tar_path = tar.path().to_path_buf();
    let report =
        tokio::task::spawn_blocking(move || crate::elf::audit::audit_path(&tar_path, glibc))
            .await
            .map_err(std::io::Error::other)?
            .map_err(|e| BuilderError::ToolchainAudit {
                image: tag.to_string(),
                glibc,
                count: 0,
                first: vec![e.to_string()],
            })?;
    let findings: Vec<String> = report
        .reports
        .iter()
        .flat_map(|r| {
            r.findings
                .iter()
                .filter(|f| {
                    matches!(
                        f,
                        Finding::SymbolVersionTooNew { .. }
                            | Finding::BlacklistedSymbol { .. }
                            | Finding::Corrupt { .. }
                    )
                })
                .map(|f| format!("{}: {}", r.path, f.message(&report.policy)))
        })
        .collect();
    if !findings.is_empty() || report.elf_files == 0 {
        return Err(BuilderError::ToolchainAudit {
            image: tag.to_string(),
            glibc,
            count: findings.len(),
            first: if findings.is_empty() {
                vec!["no ELF files found".into()]
            } else {
                findings.iter().take(5).cloned().collect()
            },
        });
    }
    info!(
        elf_files = report.elf_files,
        "toolchain builder {tag}: its CPython and libraries audit clean at glibc {glibc}"
    );
    Ok(glibc)
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
    let lock_path = paths::image_lock(&engine.lock_key());
    let lock = Lock::load(&lock_path)?;
    if !force && let Some(ready) = cached(engine, lock.bases.get(suite), &tag, &inputs_hash).await?
    {
        Lock::record(
            &lock_path,
            |l| &mut l.bases,
            suite.to_string(),
            ready.clone(),
        )?;
        return Ok(ready_image(ready, true, started));
    }
    let rootfs = rootfs::ensure_rootfs(suite, force).await?;
    let run = RunConfig {
        cmd: vec!["/bin/bash".into()],
        labels: BTreeMap::from([
            ("io.hermetic.inputs-hash".to_string(), inputs_hash.clone()),
            ("io.hermetic.role".to_string(), "base".to_string()),
            ("io.hermetic.suite".to_string(), suite.to_string()),
        ]),
        ..RunConfig::default()
    };
    let pins = lock_pins(lock.bases.get(suite), &inputs_hash);
    let (image_id, packages) = load_flattened(
        engine,
        vec![LayerSource::whole(&rootfs.path)?],
        run,
        catalog.local.source_date_epoch,
        &tag,
        &format!("hermetic images build --base {suite} (catalog inputs {inputs_hash})"),
        pins.as_ref(),
    )
    .await?;
    let locked = LockedImage {
        tag,
        image_id,
        inputs_hash,
        toolchain_glibc: None,
        packages,
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
        toolchain_glibc: None,
        packages: locked
            .filter(|l| l.inputs_hash == inputs_hash)
            .map(|l| l.packages.clone())
            .unwrap_or_default(),
    }))
}

/// The lock's package versions for an entry made from `inputs_hash`.
fn lock_pins(locked: Option<&LockedImage>, inputs_hash: &str) -> Option<Pins> {
    locked
        .filter(|l| l.inputs_hash == inputs_hash && !l.packages.is_empty())
        .map(|l| Pins {
            against: format!("the image lock (for {})", l.image_id),
            packages: l.packages.clone(),
        })
}

/// Saves the engine's image `source`, flattens it and loads the result as
/// `tag`; returns its image ID and packages.
async fn save_and_flatten(
    engine: &Engine,
    source: &str,
    tag: &str,
    epoch: u64,
    made_by: &str,
    pins: Option<&Pins>,
) -> Result<(String, BTreeMap<String, String>), BuilderError> {
    let work = scratch_dir()?;
    let saved_path = work.path().join("saved.tar");
    engine.save_image(source, &saved_path).await?;
    let saved = {
        let (p, s) = (saved_path.clone(), source.to_string());
        tokio::task::spawn_blocking(move || flatten::read_saved(&p, &s))
            .await
            .map_err(std::io::Error::other)??
    };
    let run = RunConfig::from_engine(&saved.config);
    load_flattened(engine, saved.layers, run, epoch, tag, made_by, pins).await
}

/// A scratch directory under `$HERMETIC_HOME` (image-sized files: not
/// necessarily room for them in a tmpfs `/tmp`).
fn scratch_dir() -> Result<tempfile::TempDir, BuilderError> {
    let dir = paths::home().join("tmp");
    fs_err::create_dir_all(&dir)?;
    Ok(tempfile::Builder::new()
        .prefix(".image-")
        .tempdir_in(&dir)?)
}

/// Flattens `layers` into one, checks its packages against `pins`, writes
/// the config and loads the image into the engine as `tag`. The engine's
/// image ID must be the config's digest: that is what makes it the same
/// on every machine.
async fn load_flattened(
    engine: &Engine,
    layers: Vec<LayerSource>,
    run: RunConfig,
    epoch: u64,
    tag: &str,
    made_by: &str,
    pins: Option<&Pins>,
) -> Result<(String, BTreeMap<String, String>), BuilderError> {
    let started = Instant::now();
    let work = scratch_dir()?;
    let layer_path = work.path().join("layer.tar");
    let flat = {
        let (out, t) = (layer_path.clone(), tag.to_string());
        tokio::task::spawn_blocking(move || flatten::flatten(&layers, epoch, &out, &t))
            .await
            .map_err(std::io::Error::other)??
    };
    if let Some(pins) = pins {
        check_packages(tag, pins, &flat.packages)?;
    }
    let config = flatten::image_config(&run, &flat.diff_id, epoch, made_by)?;
    let config_digest = format!("sha256:{}", crate::archive::sha256_bytes(&config));
    let config_path = work.path().join("config.json");
    fs_err::write(&config_path, &config)?;
    let archive_path = work.path().join("image.tar");
    {
        let layers = vec![(flat.diff_id.clone(), layer_path.clone())];
        let (c, d, t, a) = (
            config_path.clone(),
            config_digest.clone(),
            tag.to_string(),
            archive_path.clone(),
        );
        tokio::task::spawn_blocking(move || {
            crate::oci::docker_archive::write_parts((&d, &c), &layers, &t, &a)
        })
        .await
        .map_err(std::io::Error::other)?
        .map_err(|e| BuilderError::Flatten {
            image: tag.to_string(),
            reason: e.to_string(),
        })?;
    }
    // The layer is in the archive now; drop it before the engine copies
    // the archive, so three image-sized files never exist at once.
    let _ = fs_err::remove_file(&layer_path);
    engine.load_image_archive(&archive_path).await?;
    let loaded = engine.inspect_image(tag).await?.map(|i| i.id);
    if loaded.as_deref() != Some(config_digest.as_str()) {
        return Err(BuilderError::Flatten {
            image: tag.to_string(),
            reason: format!(
                "the engine has {} under that tag after loading, not {config_digest}",
                loaded.as_deref().unwrap_or("nothing")
            ),
        });
    }
    info!(
        image_id = %config_digest,
        layer_bytes = flat.size,
        packages = flat.packages.len(),
        elapsed_ms = ms(started),
        "{tag}: reproducible image loaded"
    );
    Ok((config_digest, flat.packages))
}

/// Refuses package versions that differ from the pinned ones, naming each.
fn check_packages(
    image: &str,
    pins: &Pins,
    got: &BTreeMap<String, String>,
) -> Result<(), BuilderError> {
    let mut changes = Vec::new();
    for (name, locked) in &pins.packages {
        match got.get(name) {
            Some(v) if v == locked => {}
            Some(v) => changes.push(format!("{name}: locked {locked}, now {v}")),
            None => changes.push(format!("{name}: locked {locked}, now not installed")),
        }
    }
    for (name, v) in got {
        if !pins.packages.contains_key(name) {
            changes.push(format!("{name}: not locked, now {v}"));
        }
    }
    if changes.is_empty() {
        Ok(())
    } else {
        Err(BuilderError::PackagesChanged {
            image: image.to_string(),
            against: pins.against.clone(),
            changes,
        })
    }
}

/// A build context: in-memory files (name, content, mode) and host files.
fn build_context(
    files: &[(&str, &[u8], u32)],
    host_files: &[(&str, &std::path::Path)],
) -> Result<tempfile::NamedTempFile, BuilderError> {
    let tmp = tempfile::NamedTempFile::new()?;
    let mut builder = tar::Builder::new(tmp.reopen()?);
    for (name, content, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(*mode);
        header.set_cksum();
        builder.append_data(&mut header, name, *content)?;
    }
    for (name, path) in host_files {
        let mut file = fs_err::File::open(path)?;
        let mut header = tar::Header::new_gnu();
        header.set_size(file.metadata()?.len());
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, &mut file)?;
    }
    builder.finish()?;
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_package_version_is_refused_by_name_and_versions() {
        let pins = Pins {
            against: "the image lock".into(),
            packages: BTreeMap::from([
                ("libc6".to_string(), "2.31-13+deb11u10".to_string()),
                ("gcc".to_string(), "4:10.2.1-1".to_string()),
            ]),
        };
        let mut got = pins.packages.clone();
        check_packages("b", &pins, &got).unwrap();
        got.insert("libc6".into(), "2.31-13+deb11u11".into());
        got.insert("extra".into(), "1".into());
        let err = check_packages("hermetic/builder:x", &pins, &got)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("libc6: locked 2.31-13+deb11u10, now 2.31-13+deb11u11"),
            "{err}"
        );
        assert!(err.contains("extra: not locked, now 1"), "{err}");
        assert!(!err.contains("gcc"), "{err}");
    }
}

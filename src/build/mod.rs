//! Executes a [`BuildPlan`] against an engine: for each baseline, resolve
//! and check the builder, fetch (network on), assemble offline, repair the
//! ELF files, make the tree relocatable, write the deterministic archive,
//! smoke-test it on a newer distro, and only then publish the outputs.
//!
//! Outputs are staged in a temporary directory inside `--out` and renamed
//! into place only after every target built and passed its smoke test, so a
//! failed build never leaves a half-written file that looks complete.
//! A build whose inputs (recipe, source tree, builder image, fetched files,
//! epoch, hermetic version) all hash the same as an earlier one reuses that
//! build's outputs from the cache.

pub mod assemble;
pub mod bytecode;
pub mod fetch;
pub mod output;
pub mod repair;
pub mod smoke;
pub mod staging;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tracing::{info, instrument};

use crate::archive::{self, ArchiveError};
use crate::builder::{self, BuilderError};
use crate::bundle::relocate::{self, BuildPaths, RelocateError};
use crate::bundle::{self, BundleMeta};
use crate::catalog::{self, CatalogError};
use crate::elf::ElfError;
use crate::engine::{Engine, EngineError, ExecOutput};
use crate::glibc::Glibc;
use crate::manifest::SourceRule;
use crate::plan::{BuildPlan, ReplayError, TargetPlan};
use crate::progress::Phase;

/// Shared state of one `hermetic build` run.
pub struct BuildContext<'a> {
    /// The engine every container runs on.
    pub engine: &'a Engine,
    /// The plan being run.
    pub plan: &'a BuildPlan,
    /// Put on every container's label and in log file names.
    pub build_id: String,
    /// The host CA bundle for fetch containers.
    pub ca_bundle: Vec<u8>,
    /// `python3.11`.
    pub python_exe: String,
    /// `3.11`.
    pub python_version: String,
}

/// The result of a whole build.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    /// The engine the build ran on (kind, version, endpoint).
    pub engine: crate::engine::EngineInfo,
    /// Bundle name.
    pub name: String,
    /// Bundle version.
    pub version: String,
    /// Where the release files were written.
    pub out_dir: PathBuf,
    /// One report per baseline.
    pub targets: Vec<TargetReport>,
    /// False when a smoke test failed (then nothing was published).
    pub passed: bool,
}

/// The result for one baseline.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    /// The baseline.
    pub glibc: Glibc,
    /// File name of the archive in the output directory.
    pub archive: String,
    /// Hex SHA-256 of the archive.
    pub sha256: String,
    /// Size of the archive in bytes.
    pub size: u64,
    /// File name of the build record.
    pub record: String,
    /// The in-toto statement with the SLSA provenance predicate.
    pub provenance: String,
    /// Whether the outputs came from the cache instead of a build.
    pub cached: bool,
    /// The builder the bundle was built in.
    pub builder: Option<builder::ResolvedBuilder>,
    /// How many libraries the repair step vendored.
    pub vendored_libs: usize,
    /// The smoke test's result, if the recipe has one.
    pub smoke: Option<smoke::SmokeReport>,
    /// Time spent per phase, in milliseconds, in order.
    pub phases_ms: Vec<(String, u64)>,
}

/// Runs the plan.
#[instrument(skip_all, fields(name = %plan.name))]
pub async fn run(
    engine: &Engine,
    plan: &BuildPlan,
    ca_bundle: Vec<u8>,
) -> Result<BuildReport, BuildError> {
    // A build that fails leaves nothing behind: its staging directory goes,
    // and so does the output directory when this build made it.
    let made_out_dir = !plan.out_dir.exists();
    fs_err::create_dir_all(&plan.out_dir)?;
    let result = run_targets(engine, plan, ca_bundle).await;
    if made_out_dir && !result.as_ref().is_ok_and(|r| r.passed) {
        // Fails (harmlessly) unless empty.
        let _ = std::fs::remove_dir(&plan.out_dir);
    }
    result
}

async fn run_targets(
    engine: &Engine,
    plan: &BuildPlan,
    ca_bundle: Vec<u8>,
) -> Result<BuildReport, BuildError> {
    // Registered under $HERMETIC_HOME so that `hermetic gc` finds it if
    // this process is killed outright; marked as not a release meanwhile.
    let staging = staging::Staging::create(&plan.out_dir, &crate::paths::home())?;
    let mut reports = Vec::new();
    let mut published = Vec::new();
    let mut passed = true;
    // Fail early: every baseline's builder is resolved (and a missing local
    // one made) before the first baseline is built, so `--glibc 2.31,2.36`
    // without the 2.36 builder says so at once, not after the 2.31 build.
    // A rebuild from a record resolves as it goes: it checks the source
    // tree before anything talks to the engine.
    let mut prepared = Vec::new();
    for target in &plan.targets {
        let (python_exe, python_version) = python_names(&target.python)?;
        let resolved = match plan.replay {
            None => Some(resolve_target_builder(engine, target, &python_exe).await?),
            Some(_) => None,
        };
        prepared.push((target, python_exe, python_version, resolved));
    }
    for (target, python_exe, python_version, resolved) in prepared {
        let ctx = BuildContext {
            engine,
            plan,
            build_id: format!("{}-glibc{}-{}", plan.name, target.glibc, random_suffix()),
            ca_bundle: ca_bundle.clone(),
            python_exe,
            python_version,
        };
        let (report, files) = build_target(&ctx, target, resolved, staging.path()).await?;
        if report.smoke.as_ref().is_some_and(|s| !s.passed) {
            passed = false;
        }
        reports.push(report);
        published.extend(files);
    }
    if passed {
        output::publish(staging.path(), &plan.out_dir, &published)?;
    }
    Ok(BuildReport {
        engine: engine.info(),
        name: plan.name.clone(),
        version: plan.version.clone(),
        out_dir: plan.out_dir.clone(),
        targets: reports,
        passed,
    })
}

/// A target's builder, resolved (and made, when it is a missing local
/// one), with the time that took.
async fn resolve_target_builder(
    engine: &Engine,
    target: &TargetPlan,
    python_exe: &str,
) -> Result<(builder::ResolvedBuilder, std::time::Duration), BuildError> {
    let phase = Phase::start(
        "resolve",
        format!("glibc {}: checking the builder image", target.glibc),
    );
    let builder = builder::resolve_builder(
        engine,
        target.glibc,
        target.builder_override.as_deref(),
        target.builder_source,
        Some(python_exe),
    )
    .await?;
    Ok((builder, phase.finish()))
}

/// Builds one baseline into `staging` with its builder, `resolved` here
/// when `None`; returns its report and the names of the files it staged.
async fn build_target(
    ctx: &BuildContext<'_>,
    target: &TargetPlan,
    resolved: Option<(builder::ResolvedBuilder, std::time::Duration)>,
    staging: &Path,
) -> Result<(TargetReport, Vec<String>), BuildError> {
    let plan = ctx.plan;
    let mut phases = Vec::new();

    // The context as it goes into the builder: the recipe's directory minus
    // VCS data and hermetic's own outputs (which would otherwise change the
    // source hash, and so the cache key, on every build into ./dist).
    // Snapshotted first: a rebuild from a record checks it before anything
    // talks to the engine.
    let context = staging::Staging::work_tree(&crate::paths::home())?;
    let source_rule = snapshot_context(
        &plan.context_dir,
        &plan.out_dir,
        &plan.named_files,
        context.path(),
    )?;
    let source_tree = archive::source_tree(context.path())?;
    let source_tree_sha256 = source_tree.sha256.clone();
    if let Some(replay) = &plan.replay
        && replay.source_tree_sha256 != source_tree_sha256
    {
        let changes = archive::source_tree_changes(&replay.source_files, &source_tree.entries);
        return Err(ReplayError {
            what: format!("the source tree {}", plan.context_dir.display()),
            recorded: format!("tree hash {}", replay.source_tree_sha256),
            found: if changes.is_empty() {
                format!("tree hash {source_tree_sha256}")
            } else {
                let changes: Vec<String> = changes
                    .iter()
                    .map(|c| crate::term::escape(c).into_owned())
                    .collect();
                format!(
                    "tree hash {source_tree_sha256}; {} entries differ: {}",
                    changes.len(),
                    crate::term::capped_list("source-tree-changes", &changes, "; ")
                )
            },
        }
        .into());
    }

    let (builder, resolve_time) = match resolved {
        Some(resolved) => resolved,
        None => resolve_target_builder(ctx.engine, target, &ctx.python_exe).await?,
    };
    // Embedding needs libpython3.X.so; a static CPython (every manylinux
    // image) has none. Stop before fetching anything, saying why.
    if !builder.shared_libpython
        && let Some(command) = crate::plan::links_libpython(&target.commands)
    {
        return Err(BuilderError::StaticLibpython {
            glibc: target.glibc,
            image: builder.reference.clone(),
            command,
            version: ctx.python_version.clone(),
        }
        .into());
    }
    // The recipe's list for the family this image really is (the plan
    // checked the catalog's word; an image given by the user, or one the
    // catalog does not describe, is asked).
    let (family, packages): (crate::catalog::PackageFamily, Vec<String>) =
        match builder.package_family {
            Some(family) => {
                let names = crate::plan::UncoveredFamily::check(
                    &target.system_packages,
                    family,
                    target.glibc,
                    &builder.reference,
                )?;
                (family, names.to_vec())
            }
            // Nothing to install: the family is never asked for.
            None if target.system_packages.is_empty() => {
                (crate::catalog::PackageFamily::Deb, Vec::new())
            }
            None => {
                return Err(BuildError::NoPackageManager {
                    image: builder.reference.clone(),
                    packages: target.system_packages.describe(),
                });
            }
        };
    phases.push(("resolve".to_string(), resolve_time.as_millis() as u64));
    let mut timed = |name: &str, started: Instant| {
        phases.push((name.to_string(), started.elapsed().as_millis() as u64))
    };

    let started = Instant::now();
    let phase = Phase::start(
        "fetch",
        format!(
            "glibc {}: fetching system packages and Python inputs",
            target.glibc
        ),
    );
    let derived = match &plan.replay {
        None => fetch::derive_image(ctx, &builder.image_id, family, &packages).await?,
        Some(replay) => {
            fetch::derive_recorded_image(
                ctx,
                &builder.image_id,
                family,
                &packages,
                &replay.system_packages,
            )
            .await?
        }
    };
    let python = format!("{}/bin/{}", builder.python_prefix, ctx.python_exe);
    let inputs = fetch::fetch_inputs(ctx, &derived.image_id, &python, target).await?;
    if let Some(replay) = &plan.replay
        && replay.inputs != inputs
    {
        let names = |v: &[bundle::FetchedInput]| {
            v.iter()
                .map(|i| format!("{} ({})", i.filename, i.sha256))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(ReplayError {
            what: "the fetched Python inputs".into(),
            recorded: names(&replay.inputs),
            found: names(&inputs),
        }
        .into());
    }
    phase.finish();
    timed("fetch", started);

    let cache_key = output::cache_key(
        plan,
        target,
        &builder,
        &derived,
        &inputs,
        &source_tree_sha256,
        source_rule,
    );
    let cached = if plan.rebuild {
        None
    } else {
        output::from_cache(&cache_key, target, staging)?
    };
    if let Some((report, files)) = cached {
        info!(key = %cache_key, "unchanged inputs: reusing the cached outputs");
        return Ok((
            TargetReport {
                builder: Some(builder),
                phases_ms: phases,
                ..report
            },
            files,
        ));
    }

    let started = Instant::now();
    let phase = Phase::start(
        "build",
        format!("glibc {}: assembling the bundle offline", target.glibc),
    );
    let work = staging::Staging::work_tree(&crate::paths::home())?;
    let inputs_dir = work.path().join("inputs");
    fetch::BlobCache::open()?.materialize(&inputs, &inputs_dir)?;
    let container = assemble::create(ctx, &derived.image_id).await?;
    let assembled = async {
        assemble::assemble(
            ctx,
            &container,
            target,
            &inputs_dir,
            context.path(),
            builder.python_install_dir(),
        )
        .await?;
        phase.set_message(format!("glibc {}: repairing ELF files", target.glibc));
        let vendored = repair::repair(ctx, &container, target.glibc, work.path()).await?;
        let tar = work.path().join("bundle.tar");
        container
            .copy_out(&assemble::bundle_dir(&plan.name), &tar)
            .await?;
        Ok::<_, BuildError>((vendored, tar))
    }
    .await;
    container.remove().await;
    let (vendored, tar) = assembled?;
    phase.finish();
    timed("build", started);

    let started = Instant::now();
    let phase = Phase::start(
        "finish",
        format!("glibc {}: relocating, pruning, archiving", target.glibc),
    );
    let tree = work.path().join("tree");
    fs_err::create_dir_all(&tree)?;
    archive::unpack_safe(fs_err::File::open(&tar)?, &tree, archive::unpack_limit()?)?;
    let top = tree.join(&plan.name);
    let paths = BuildPaths {
        bundle_dir: assemble::bundle_dir(&plan.name),
        python_prefixes: builder.python_prefixes(),
        work_dirs: [
            assemble::SRC_DIR,
            assemble::WORK_DIR,
            assemble::INPUTS_DIR,
            "/tmp/pip-",
        ]
        .map(String::from)
        .to_vec(),
    };
    relocate::relocate(&top, &paths, &ctx.python_exe)?;
    write_launchers(&top, &target.launchers, &ctx.python_exe)?;
    output::prune(&top, &target.prune, &target.launchers)?;
    if target.install.bytecode == crate::recipe::Bytecode::CheckedHash {
        phase.set_message(format!(
            "glibc {}: compiling checked-hash bytecode",
            target.glibc
        ));
        bytecode::compile(ctx, &builder.image_id, &python, &top).await?;
    }
    let hits = relocate::scan(&top, &paths)?;
    let forbidden_hits = relocate::forbidden_hits(&hits, &paths);
    let forbidden: Vec<String> = forbidden_hits
        .iter()
        .map(|h| format!("{} ({})", h.path, h.needle))
        .collect();
    if !forbidden.is_empty() {
        return Err(BuildError::BuildPaths {
            files: crate::term::capped_list("build-paths", &forbidden, ", "),
            compiled: forbidden_hits.iter().any(|h| h.elf),
            bytecode: forbidden_hits.iter().any(|h| h.path.ends_with(".pyc")),
        });
    }

    // The repair's promise, checked on the finished tree: every ELF file
    // complies with the baseline's policy.
    let policy = crate::elf::policy::Policy::for_glibc(target.glibc)?;
    let tree = crate::elf::tree::Tree::scan(&top)?;
    let audit = crate::elf::audit::audit(&tree, policy)?;
    if !audit.compliant {
        let lines: Vec<String> = audit.render_text().lines().map(String::from).collect();
        return Err(BuildError::NotCompliant {
            glibc: target.glibc,
            report: crate::term::capped_list("audit-findings", &lines, "\n"),
        });
    }
    let elf_files: Vec<String> = tree
        .elves
        .iter()
        .filter(|e| e.is_loadable())
        .map(|e| e.path.clone())
        .collect();

    let meta = BundleMeta {
        format: BundleMeta::FORMAT,
        name: plan.name.clone(),
        version: plan.version.clone(),
        glibc: target.glibc,
        launchers: target.launchers.clone(),
        python: bundle::meta::PythonRuntime {
            version: python_full_version(&builder),
            source_url: catalog_python(&builder)
                .map(|p| p.url)
                .or_else(|| upstream_python_source(&builder.python_version)),
            source_sha256: catalog_python(&builder).map(|p| p.sha256),
            path: bundle::RUNTIME_DIR.to_string(),
        },
        builder: bundle::meta::BuilderImage {
            reference: builder.reference.clone(),
            image_id: builder.image_id.clone(),
            distro: output::distro_of(&builder),
        },
        inputs: inputs.clone(),
        system_packages: derived.packages.clone(),
        vendored_libs: vendored.clone(),
        native_files: output::native_files(&top, &target.collect)?,
        source_date_epoch: plan.source_date_epoch,
        source_tree_sha256: plan_has_project(target).then(|| source_tree_sha256.clone()),
        recipe_sha256: plan.recipe_sha256.clone(),
    };
    let meta_path = top.join(bundle::META_PATH);
    fs_err::create_dir_all(meta_path.parent().unwrap_or(&top))?;
    fs_err::write(&meta_path, meta.to_canonical_json()?)?;
    let sbom = crate::sbom::generate(&top)?;
    let sbom_dir = top.join(bundle::SBOM_DIR);
    fs_err::create_dir_all(&sbom_dir)?;
    fs_err::write(
        sbom_dir.join(format!("{}.cdx.json", plan.name)),
        sbom.to_json_bytes(),
    )?;

    let mut staged = output::stage(
        ctx,
        target,
        &top,
        &builder,
        &derived,
        &inputs,
        &source_tree,
        source_rule,
        staging,
    )?;
    staged.vendored_libs = vendored.len();
    phase.finish();
    timed("finish", started);

    let smoke = match &target.smoke {
        Some(smoke_plan) => {
            let started = Instant::now();
            let phase = Phase::start(
                "smoke",
                format!(
                    "glibc {}: smoke test on {}",
                    target.glibc, target.smoke_suite
                ),
            );
            let archive = staging.join(&target.archive_name);
            let mut report = smoke::run(
                ctx,
                &archive,
                smoke_plan,
                &target.smoke_suite,
                &elf_files,
                policy,
            )
            .await?;
            if !report.passed {
                // The smoke test's verdict stands even when its evidence
                // cannot be kept (a full disk): say so, and go on.
                match smoke::keep_evidence(
                    &ctx.build_id,
                    &archive,
                    &report,
                    smoke_plan.expect.as_deref(),
                ) {
                    Ok(dir) => report.evidence = Some(dir.display().to_string()),
                    Err(e) => {
                        tracing::warn!("could not keep the failed smoke test's evidence: {e}")
                    }
                }
            }
            phase.finish();
            timed("smoke", started);
            Some(report)
        }
        None => None,
    };
    if smoke.as_ref().is_none_or(|s| s.passed) {
        output::store_in_cache(&cache_key, staging, &staged)?;
    }
    Ok((
        TargetReport {
            glibc: target.glibc,
            archive: target.archive_name.clone(),
            sha256: staged.archive_sha256.clone(),
            size: staged.archive_size,
            record: staged.record_name.clone(),
            provenance: output::provenance_name(target),
            cached: false,
            builder: Some(builder),
            vendored_libs: vendored.len(),
            smoke,
            phases_ms: phases,
        },
        staged.files,
    ))
}

fn plan_has_project(target: &TargetPlan) -> bool {
    target.install.project.is_some()
}

fn catalog_python(builder: &builder::ResolvedBuilder) -> Option<catalog::PythonSource> {
    (builder.source == catalog::Source::Local)
        .then(|| {
            catalog::Catalog::active()
                .ok()
                .map(|c| c.local.python.clone())
        })
        .flatten()
}

/// The python.org release tarball an upstream builder's CPython is built
/// from (manylinux builds every interpreter from those): `3.11.2` →
/// `…/ftp/python/3.11.2/Python-3.11.2.tar.xz`, a pre-release under its
/// final version's directory. Its hash is the image's to prove, so none is
/// recorded. `None` for a version that does not read as CPython's.
fn upstream_python_source(version: &str) -> Option<String> {
    let release: String = version
        .split('.')
        .take(3)
        .map(|p| {
            p.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(".");
    let parts = release.split('.').filter(|p| !p.is_empty()).count();
    (parts == 3 && version.starts_with("3."))
        .then(|| format!("https://www.python.org/ftp/python/{release}/Python-{version}.tar.xz"))
}

fn python_full_version(builder: &builder::ResolvedBuilder) -> String {
    builder.python_version.clone()
}

/// `"3.11"` -> (`"python3.11"`, `"3.11"`).
fn python_names(python: &str) -> Result<(String, String), BuildError> {
    let mut parts = python.split('.');
    let (Some(major), Some(minor)) = (parts.next(), parts.next()) else {
        return Err(BuildError::Python {
            wanted: python.to_string(),
            reason: "expected a version like 3.11".into(),
        });
    };
    if major != "3" || minor.parse::<u32>().is_err() {
        return Err(BuildError::Python {
            wanted: python.to_string(),
            reason: "expected a version like 3.11".into(),
        });
    }
    Ok((format!("python3.{minor}"), format!("3.{minor}")))
}

fn write_launchers(top: &Path, launchers: &[String], python_exe: &str) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    for name in launchers {
        let script = top.join(bundle::RUNTIME_DIR).join("bin").join(name);
        if !script.is_file() {
            return Err(BuildError::Launcher { name: name.clone() });
        }
        let path = top.join(name);
        fs_err::write(&path, bundle::launcher::launcher_script(name, python_exe))?;
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// A directory hermetic published outputs into (it holds SHA256SUMS and a
/// build record): never source, whichever `--out` made it.
fn is_release_dir(dir: &Path) -> bool {
    dir.join(archive::SHA256SUMS).is_file()
        && fs_err::read_dir(dir).is_ok_and(|mut it| {
            it.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".build.json")))
        })
}

/// Copies the build context (the recipe's directory, minus VCS data and
/// hermetic's own outputs) to `dest`, and says which rule chose its files:
/// in a git checkout that tracks the recipe (`named[0]`), the files git
/// tracks plus `named` (the recipe and its requirement files), so stray untracked files (logs, an old `dist/`,
/// editor files) change neither the cache key nor any output; elsewhere,
/// every file. What the git rule leaves out is listed with `-v`.
fn snapshot_context(
    src: &Path,
    out_dir: &Path,
    named: &[PathBuf],
    dest: &Path,
) -> Result<SourceRule, BuildError> {
    use std::os::unix::fs::PermissionsExt;
    let out_dir = fs_err::canonicalize(out_dir).ok();
    let src_real = fs_err::canonicalize(src)?;
    // With $TMPDIR inside the recipe's directory, the snapshot (and any
    // other build's work tree) lies in what is being snapshotted: copying
    // it into itself never ends.
    let dest_real = fs_err::canonicalize(dest)?;
    let relative = |p: &PathBuf| {
        fs_err::canonicalize(p)
            .ok()
            .and_then(|p| p.strip_prefix(&src_real).ok().map(Path::to_path_buf))
    };
    // The git rule holds when git tracks the recipe itself: a recipe
    // directory that merely lies inside some other work tree (a home
    // directory kept in git, say) is taken whole.
    let recipe = named.first().and_then(relative);
    let tracked = git_tracked(&src_real).filter(|t| recipe.as_ref().is_some_and(|r| t.contains(r)));
    let named: BTreeSet<PathBuf> = named.iter().filter_map(relative).collect();
    let mut left_out = Vec::new();
    let walker = walkdir::WalkDir::new(&src_real)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            name != ".git"
                && !name.starts_with(".hermetic-")
                && !(e.file_type().is_dir() && name.starts_with(staging::WORK_PREFIX))
                && e.path() != dest_real
                && out_dir.as_deref() != Some(e.path())
                && !(e.file_type().is_dir() && is_release_dir(e.path()))
        });
    for entry in walker {
        let entry = entry.map_err(std::io::Error::other)?;
        let rel = entry.path().strip_prefix(&src_real).unwrap_or(entry.path());
        let target = dest.join(rel);
        let kind = entry.file_type();
        if kind.is_dir() {
            // Under the git rule a directory exists when a file in it does
            // (git tracks no empty directories).
            if tracked.is_none() {
                fs_err::create_dir_all(&target)?;
            }
            continue;
        }
        if let Some(tracked) = &tracked
            && !tracked.contains(rel)
            && !named.contains(rel)
        {
            left_out.push(rel.display().to_string());
            continue;
        }
        if let Some(parent) = target.parent() {
            fs_err::create_dir_all(parent)?;
        }
        if kind.is_symlink() {
            std::os::unix::fs::symlink(fs_err::read_link(entry.path())?, &target)?;
        } else if kind.is_file() {
            fs_err::copy(entry.path(), &target)?;
            let mode = entry
                .metadata()
                .map_err(std::io::Error::other)?
                .permissions()
                .mode();
            fs_err::set_permissions(
                &target,
                std::fs::Permissions::from_mode(if mode & 0o111 != 0 { 0o755 } else { 0o644 }),
            )?;
        }
    }
    if !left_out.is_empty() {
        info!(
            "{} untracked file(s) in {} left out of the build context (git rule): {}",
            left_out.len(),
            src.display(),
            crate::term::capped_list("left-out", &left_out, ", ")
        );
    }
    Ok(if tracked.is_some() {
        SourceRule::Git
    } else {
        SourceRule::Directory
    })
}

/// The files git tracks under `dir` (relative to it), or `None` when `dir`
/// is not in a git work tree (or git is not installed).
fn git_tracked(dir: &Path) -> Option<BTreeSet<PathBuf>> {
    use std::os::unix::ffi::OsStrExt;
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["ls-files", "-z", "--cached"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(
        out.stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p)))
            .collect(),
    )
}

fn random_suffix() -> String {
    use sha2::Digest;
    let seed = format!("{}-{:?}", std::process::id(), std::time::SystemTime::now());
    hex::encode(sha2::Sha256::digest(seed.as_bytes()))[..8].to_string()
}

/// Turns a failed step into an error that shows its last lines and log.
pub(crate) fn step_failed(step: &str, out: &ExecOutput, log: &Path) -> BuildError {
    BuildError::Step {
        step: step.to_string(),
        exit_code: out.exit_code,
        tail: out.tail.clone(),
        log: log.to_path_buf(),
    }
}

/// Errors that stop a build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A fetched file does not have a hash the requirements allow.
    #[error("hash mismatch for {file}: expected sha256 {expected}, got {got}")]
    HashMismatch {
        /// The file.
        file: String,
        /// The hash the requirements give.
        expected: String,
        /// The hex SHA-256 it has.
        got: String,
    },

    /// A pinned requirement was not fetched.
    #[error("input {requirement} is missing: {reason}")]
    InputMissing {
        /// `name==version`.
        requirement: String,
        /// Why, as far as known.
        reason: String,
    },

    /// A step in a container exited non-zero.
    #[error("step `{step}` failed with exit code {exit_code} (log: {}){}", log.display(), tail_text(tail))]
    Step {
        /// The step, as its log names it.
        step: String,
        /// Its exit code.
        exit_code: i64,
        /// The last lines of its output.
        tail: Vec<String>,
        /// The log file with all of its output.
        log: PathBuf,
    },

    /// Files of the bundle still name build paths after relocation.
    #[error("the bundle still refers to build paths in: {files}")]
    BuildPaths {
        /// The files, capped for one line ([`crate::term::capped_list`]).
        files: String,
        /// Some are ELF files (a compiler wrote the path in).
        compiled: bool,
        /// Some are `.pyc` files (they record their source's path).
        bytecode: bool,
    },

    /// The audit still finds problems after the repair step.
    #[error("after repair the bundle still does not comply with glibc {glibc}:\n{report}")]
    NotCompliant {
        /// The baseline.
        glibc: Glibc,
        /// The audit's findings, as text.
        report: String,
    },

    /// A launcher names no installed console script.
    #[error("launcher `{name}`: no console script of that name was installed in the runtime")]
    Launcher {
        /// The launcher.
        name: String,
    },

    /// The recipe's Python version is unusable.
    #[error("python {wanted}: {reason}")]
    Python {
        /// The version asked for.
        wanted: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A recorded input cannot be had for a rebuild.
    #[error(transparent)]
    Replay(#[from] ReplayError),

    /// The builder's package family has no system package list.
    #[error(transparent)]
    Family(#[from] crate::plan::UncoveredFamily),

    /// System packages are asked for, but the builder has no known package manager.
    #[error(
        "the builder {image} has no package manager hermetic knows (apt-get, dnf or yum), \
         and the recipe asks for system packages ({packages})"
    )]
    NoPackageManager {
        /// The builder image.
        image: String,
        /// The packages asked for.
        packages: String,
    },

    /// The container engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The catalog has no builder or base for the request.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A builder image could not be made or checked.
    #[error(transparent)]
    Builder(#[from] BuilderError),
    /// The archive could not be written or read.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// An ELF file could not be audited or repaired.
    #[error(transparent)]
    Elf(#[from] ElfError),
    /// The bundle could not be made relocatable.
    #[error(transparent)]
    Relocate(#[from] RelocateError),
    /// The SBOM could not be made.
    #[error(transparent)]
    Sbom(#[from] crate::sbom::SbomError),
    /// A JSON document could not be written.
    #[error(transparent)]
    Json(#[from] crate::json::JsonError),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl BuildError {
    /// A line the user can act on.
    pub fn help(&self) -> Option<String> {
        match self {
            BuildError::Engine(e) => e.help(),
            BuildError::Catalog(e) => e.help(),
            BuildError::Builder(e) => e.help(),
            BuildError::Step { .. } => {
                Some("rerun with -v to stream the container's output".into())
            }
            BuildError::HashMismatch { .. } => Some(
                "check the requirement's --hash, or whether the file on the index changed".into(),
            ),
            BuildError::Replay(_) => Some(ReplayError::help()),
            BuildError::Family(_) => Some(crate::plan::UncoveredFamily::help()),
            BuildError::BuildPaths {
                compiled, bytecode, ..
            } => {
                let mut fixes = Vec::new();
                if *compiled {
                    fixes.push(format!(
                        "a compiler wrote its source directory into the ELF files: map it \
                         away with -ffile-prefix-map={src}=. in CFLAGS/CXXFLAGS (C, C++), \
                         RUSTFLAGS=\"--remap-path-prefix={src}=.\" (Rust) or -trimpath (Go), \
                         or build without debug info",
                        src = assemble::SRC_DIR
                    ));
                }
                if *bytecode {
                    fixes.push(
                        "bytecode records its source's path: keep the default prune rules \
                         (which drop .pyc files) or set [install] bytecode = \"checked-hash\""
                            .into(),
                    );
                }
                (!fixes.is_empty()).then(|| fixes.join("; "))
            }
            _ => None,
        }
    }
}

fn tail_text(tail: &[String]) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("\n  | {}", tail.join("\n  | "))
    }
}

#[cfg(test)]
mod tests {
    use super::{SourceRule, snapshot_context};
    use crate::plan::links_libpython;
    use std::path::Path;

    fn git(dir: &Path, args: &[&str]) {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = walkdir::WalkDir::new(dir)
            .min_depth(1)
            .into_iter()
            .map(|e| e.unwrap())
            .map(|e| e.path().strip_prefix(dir).unwrap().display().to_string())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn in_git_the_context_is_what_git_tracks_plus_the_files_the_recipe_names() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("app");
        fs_err::create_dir_all(src.join("pkg")).unwrap();
        fs_err::write(src.join("hermetic.toml"), "x").unwrap();
        fs_err::write(src.join("pkg/mod.py"), "y").unwrap();
        git(&src, &["init", "-q"]);
        git(&src, &["add", "pkg/mod.py"]);
        git(&src, &["commit", "-q", "-m", "c"]);
        // The recipe is not tracked yet: not a checkout of this project.
        let early = tmp.path().join("early");
        fs_err::create_dir_all(&early).unwrap();
        let named = [src.join("hermetic.toml")];
        let out = tmp.path().join("out");
        let rule = snapshot_context(&src, &out, &named, &early).unwrap();
        assert_eq!(rule, SourceRule::Directory);
        git(&src, &["add", "hermetic.toml"]);
        git(&src, &["commit", "-q", "-m", "recipe"]);
        // Stray files, an untracked requirements file the recipe names,
        // and a directory holding only strays.
        fs_err::write(src.join("notes.log"), "stray").unwrap();
        fs_err::write(src.join("requirements.txt"), "r").unwrap();
        fs_err::create_dir_all(src.join(".idea")).unwrap();
        fs_err::write(src.join(".idea/workspace.xml"), "stray").unwrap();
        let named = [src.join("hermetic.toml"), src.join("requirements.txt")];
        let dest = tmp.path().join("ctx");
        fs_err::create_dir_all(&dest).unwrap();
        let rule = snapshot_context(&src, &out, &named, &dest).unwrap();
        assert_eq!(rule, SourceRule::Git);
        assert_eq!(
            files(&dest),
            ["hermetic.toml", "pkg", "pkg/mod.py", "requirements.txt"]
        );

        // Outside git: every file, as before.
        fs_err::remove_dir_all(src.join(".git")).unwrap();
        let dest = tmp.path().join("ctx2");
        fs_err::create_dir_all(&dest).unwrap();
        let rule = snapshot_context(&src, &out, &named, &dest).unwrap();
        assert_eq!(rule, SourceRule::Directory);
        assert!(files(&dest).contains(&"notes.log".to_string()));
        assert!(files(&dest).contains(&".idea/workspace.xml".to_string()));
    }

    /// With $TMPDIR inside the recipe's directory, the snapshot lies in
    /// what it copies: it and other builds' work trees are left out (the
    /// copy never ended before).
    #[test]
    fn a_snapshot_inside_the_context_is_not_copied_into_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("app");
        fs_err::create_dir_all(src.join("tmp/hermetic-work-1-2-other")).unwrap();
        fs_err::write(src.join("tmp/hermetic-work-1-2-other/big"), "x").unwrap();
        fs_err::write(src.join("hermetic.toml"), "x").unwrap();
        let dest = src.join("tmp/hermetic-work-3-4-mine");
        fs_err::create_dir_all(&dest).unwrap();
        let named = [src.join("hermetic.toml")];
        let rule = snapshot_context(&src, &tmp.path().join("out"), &named, &dest).unwrap();
        assert_eq!(rule, SourceRule::Directory);
        assert_eq!(files(&dest), ["hermetic.toml", "tmp"]);
    }

    #[test]
    fn a_build_path_in_a_compiled_file_suggests_the_compilers_remapping_flag() {
        let err = super::BuildError::BuildPaths {
            files: "bin/app (/hermetic/src)".into(),
            compiled: true,
            bytecode: false,
        };
        let help = err.help().unwrap();
        assert!(help.contains("-ffile-prefix-map=/hermetic/src=."), "{help}");
        assert!(
            help.contains("--remap-path-prefix=/hermetic/src=."),
            "{help}"
        );
        assert!(!help.contains("bytecode"), "{help}");
        let err = super::BuildError::BuildPaths {
            files: "x.pyc (/hermetic/src)".into(),
            compiled: false,
            bytecode: true,
        };
        assert!(err.help().unwrap().contains("checked-hash"));
        let err = super::BuildError::BuildPaths {
            files: "share/notes.txt (/hermetic/src)".into(),
            compiled: false,
            bytecode: false,
        };
        assert_eq!(err.help(), None);
    }

    #[test]
    fn upstream_python_sources_are_python_org_release_tarballs() {
        use super::upstream_python_source as url;
        assert_eq!(
            url("3.11.2").as_deref(),
            Some("https://www.python.org/ftp/python/3.11.2/Python-3.11.2.tar.xz")
        );
        assert_eq!(
            url("3.14.0rc2").as_deref(),
            Some("https://www.python.org/ftp/python/3.14.0/Python-3.14.0rc2.tar.xz")
        );
        assert_eq!(url("3.11"), None);
        assert_eq!(url(""), None);
    }

    #[test]
    fn link_flags_that_need_a_shared_libpython_are_found() {
        let cmds = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            links_libpython(&cmds(&["pip install .", "cc x.c -lpython3.11"])),
            Some(2)
        );
        assert_eq!(
            links_libpython(&cmds(&["cc x.c $(python3.11-config --embed --ldflags)"])),
            Some(1)
        );
        assert_eq!(
            links_libpython(&cmds(&["cc x.c $(pkg-config --libs python-3.11-embed)"])),
            Some(1)
        );
        assert_eq!(
            links_libpython(&cmds(&["pip install .", "python -m build"])),
            None
        );
    }
}

//! The build's outputs: pruning the tree, staging the archive, record and
//! SBOM, the output cache, and publishing into `--out` atomically.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::fetch::DerivedImage;
use super::{BuildContext, BuildError, TargetReport};
use crate::archive::{self, ArchiveOptions};
use crate::builder::ResolvedBuilder;
use crate::bundle::{FetchedInput, NativeFile};
use crate::manifest::{
    BuildRecord, RECORD_FORMAT, RecordedBuilder, RecordedOutput, RecordedRecipe, SourceRule,
};
use crate::plan::{BuildPlan, CollectPlan, PrunePlan, TargetPlan};

/// What [`stage`] wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Staged {
    /// File names written to the output directory, in order.
    pub files: Vec<String>,
    /// Hex SHA-256 of the archive.
    pub archive_sha256: String,
    /// Size of the archive in bytes.
    pub archive_size: u64,
    /// File name of the build record.
    pub record_name: String,
    /// How many libraries the repair step vendored (reported again when
    /// the outputs come from the cache).
    #[serde(default)]
    pub vendored_libs: usize,
}

/// Removes what the prune rules exclude (and does not keep), then the
/// directories left empty. Paths are relative to the bundle top; hermetic's
/// own metadata and the launchers are never pruned.
pub fn prune(top: &Path, rules: &PrunePlan, launchers: &[String]) -> Result<usize, BuildError> {
    let matcher = rules
        .matcher()
        .map_err(|e| BuildError::Io(std::io::Error::other(format!("prune rules: {e}"))))?;
    let mut removed = 0;
    // Deepest first, so a directory is looked at after its contents.
    let entries: Vec<walkdir::DirEntry> = walkdir::WalkDir::new(top)
        .min_depth(1)
        .contents_first(true)
        .sort_by_file_name()
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(std::io::Error::other)?;
    for entry in entries {
        crate::cancel::check()?;
        let rel = entry
            .path()
            .strip_prefix(top)
            .unwrap_or(entry.path())
            .to_string_lossy()
            .into_owned();
        if rel.starts_with("share/hermetic") || launchers.contains(&rel) {
            continue;
        }
        if entry.file_type().is_dir() {
            if fs_err::read_dir(entry.path())?.next().is_none() {
                fs_err::remove_dir(entry.path())?;
            }
        } else if matcher.is_excluded(&rel) {
            fs_err::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The files the recipe's commands produced, with their hashes.
pub fn native_files(top: &Path, collect: &[CollectPlan]) -> Result<Vec<NativeFile>, BuildError> {
    let mut out = Vec::new();
    for c in collect {
        let path = top.join(&c.to);
        for file in crate::bundle::relocate::walk_files(&path)? {
            let (sha256, _) = archive::sha256_file(&file)?;
            let rel = file
                .strip_prefix(top)
                .unwrap_or(&file)
                .to_string_lossy()
                .into_owned();
            out.push(NativeFile { path: rel, sha256 });
        }
        if path.is_file() {
            let (sha256, _) = archive::sha256_file(&path)?;
            out.push(NativeFile {
                path: c.to.clone(),
                sha256,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup();
    Ok(out)
}

/// The builder's distro, for purl qualifiers (`debian-11`, …).
pub fn distro_of(builder: &ResolvedBuilder) -> String {
    builder.found.distro_id().to_string()
}

/// Writes the archive and build record for one target into `staging`.
#[allow(clippy::too_many_arguments)]
pub fn stage(
    ctx: &BuildContext<'_>,
    target: &TargetPlan,
    top: &Path,
    builder: &ResolvedBuilder,
    derived: &DerivedImage,
    inputs: &[FetchedInput],
    source_tree: &archive::SourceTree,
    source_rule: SourceRule,
    staging: &Path,
) -> Result<Staged, BuildError> {
    let plan = ctx.plan;
    let options = ArchiveOptions {
        source_date_epoch: plan.source_date_epoch,
        compression: target.compression,
    };
    let summary = archive::write_archive_atomically(
        top,
        &plan.name,
        &staging.join(&target.archive_name),
        &options,
    )?;
    let stem = archive_stem(target);
    let mut outputs = vec![RecordedOutput {
        name: target.archive_name.clone(),
        sha256: summary.sha256.clone(),
        size: summary.size,
    }];
    let mut files = vec![target.archive_name.clone()];
    let sbom_name = format!("{stem}.cdx.json");
    let sbom_src = top
        .join(crate::bundle::SBOM_DIR)
        .join(format!("{}.cdx.json", plan.name));
    if sbom_src.is_file() {
        fs_err::copy(&sbom_src, staging.join(&sbom_name))?;
        let (sha256, size) = archive::sha256_file(&staging.join(&sbom_name))?;
        outputs.push(RecordedOutput {
            name: sbom_name.clone(),
            sha256,
            size,
        });
        files.push(sbom_name);
    }
    let record = BuildRecord {
        format: RECORD_FORMAT,
        hermetic_version: env!("CARGO_PKG_VERSION").to_string(),
        name: plan.name.clone(),
        version: plan.version.clone(),
        glibc: target.glibc,
        recipe: RecordedRecipe {
            path: recipe_display(plan, source_rule),
            sha256: plan.recipe_sha256.clone(),
        },
        source_tree_sha256: source_tree.sha256.clone(),
        source_rule,
        source_files: source_tree.entries.clone(),
        builder: RecordedBuilder {
            reference: builder.reference.clone(),
            image_id: builder.image_id.clone(),
            glibc: builder.found,
            inputs_hash: builder.inputs_hash.clone(),
            packages: builder.packages.clone(),
        },
        system_packages: derived.packages.clone(),
        inputs: inputs.to_vec(),
        source_date_epoch: plan.source_date_epoch,
        outputs,
    };
    let record_name = format!("{stem}.build.json");
    let record_bytes = record.to_canonical_json()?;
    fs_err::write(staging.join(&record_name), &record_bytes)?;
    files.push(record_name.clone());
    let statement =
        crate::provenance::statement(&record, &record_name, &archive::sha256_bytes(&record_bytes));
    let provenance_name = provenance_name(target);
    fs_err::write(
        staging.join(&provenance_name),
        statement.to_canonical_json()?,
    )?;
    files.push(provenance_name);
    Ok(Staged {
        files,
        archive_sha256: summary.sha256,
        archive_size: summary.size,
        record_name,
        vendored_libs: 0,
    })
}

/// File name of a target's in-toto provenance statement.
pub fn provenance_name(target: &TargetPlan) -> String {
    format!("{}{}", archive_stem(target), crate::provenance::SUFFIX)
}

/// A target's archive name without its extension: the stem of every
/// output's name.
fn archive_stem(target: &TargetPlan) -> &str {
    archive::archive_stem(&target.archive_name).unwrap_or(&target.archive_name)
}

/// The recipe as the record names it: its file name, relative to the
/// build context (its own directory). Nothing about where hermetic ran or
/// where the outputs went may enter the record, or it stops reproducing.
/// How the record names the recipe: in a git checkout, its path from the
/// top of the work tree (`recipes/app/hermetic.toml`), so a verifier finds
/// it in a fresh clone; elsewhere its file name.
fn recipe_display(plan: &BuildPlan, source_rule: SourceRule) -> String {
    if source_rule == SourceRule::Git
        && let Some(path) = git_path_from_top(&plan.recipe)
    {
        return path;
    }
    plan.recipe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "hermetic.toml".into())
}

/// A tracked file's path from the top of its git work tree.
fn git_path_from_top(file: &Path) -> Option<String> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["ls-files", "--full-name", "--"])
        .arg(file.file_name()?)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let path = String::from_utf8(out.stdout).ok()?;
    let path = path.lines().next()?.trim();
    (!path.is_empty()).then(|| path.to_string())
}

/// Moves staged files into `out` and rewrites `SHA256SUMS` (entries for
/// other files already there are kept). SHA256SUMS is written last.
pub fn publish(staging: &Path, out: &Path, files: &[String]) -> Result<(), BuildError> {
    let sums_path = out.join(archive::SHA256SUMS);
    // (name, sha256) pairs, as archive's SHA256SUMS functions use them.
    let mut entries: Vec<(String, String)> = if sums_path.is_file() {
        archive::read_sha256sums(&sums_path)?
    } else {
        vec![]
    };
    entries.retain(|(name, _)| !files.contains(name) && out.join(name).is_file());
    for name in files {
        let (sha256, _) = archive::sha256_file(&staging.join(name))?;
        fs_err::rename(staging.join(name), out.join(name))?;
        entries.push((name.clone(), sha256));
    }
    let pairs = entries;
    archive::write_sha256sums(out, &pairs)?;
    Ok(())
}

/// The hash of everything that determines a target's outputs.
pub fn cache_key(
    plan: &BuildPlan,
    target: &TargetPlan,
    builder: &ResolvedBuilder,
    derived: &DerivedImage,
    inputs: &[FetchedInput],
    source_tree_sha256: &str,
    source_rule: SourceRule,
) -> String {
    let value = serde_json::json!({
        "hermetic": env!("CARGO_PKG_VERSION"),
        // Bumped when a build starts writing different files (2: the
        // in-toto provenance statement; 3: the record's source rule), so
        // older cache entries miss.
        "outputs": 3,
        "source_rule": source_rule,
        "name": plan.name,
        "version": plan.version,
        "recipe": plan.recipe_sha256,
        "source_tree": source_tree_sha256,
        "epoch": plan.source_date_epoch,
        "builder": builder.image_id,
        "derived": derived.image_id,
        "inputs": inputs,
        "target": target,
    });
    archive::sha256_bytes(value.to_string().as_bytes())
}

#[derive(Serialize, Deserialize)]
struct CacheEntry {
    staged: Staged,
}

/// Copies a cached build's outputs into `staging`, after checking them.
pub fn from_cache(
    key: &str,
    target: &TargetPlan,
    staging: &Path,
) -> Result<Option<(TargetReport, Vec<String>)>, BuildError> {
    let dir = crate::paths::home().join("outputs").join(key);
    let Ok(text) = fs_err::read_to_string(dir.join("entry.json")) else {
        return Ok(None);
    };
    let Ok(entry) = serde_json::from_str::<CacheEntry>(&text) else {
        return Ok(None);
    };
    for name in &entry.staged.files {
        if !dir.join(name).is_file() {
            return Ok(None);
        }
    }
    let (sha256, _) = archive::sha256_file(&dir.join(&target.archive_name))?;
    if sha256 != entry.staged.archive_sha256 {
        tracing::warn!(key, "cached outputs are corrupt; rebuilding");
        return Ok(None);
    }
    for name in &entry.staged.files {
        fs_err::copy(dir.join(name), staging.join(name))?;
    }
    let report = TargetReport {
        glibc: target.glibc,
        archive: target.archive_name.clone(),
        sha256: entry.staged.archive_sha256.clone(),
        size: entry.staged.archive_size,
        record: entry.staged.record_name.clone(),
        provenance: provenance_name(target),
        cached: true,
        builder: None,
        vendored_libs: entry.staged.vendored_libs,
        smoke: None,
        phases_ms: vec![],
    };
    Ok(Some((report, entry.staged.files)))
}

/// Keeps a copy of a successful target's outputs for unchanged rebuilds.
pub fn store_in_cache(key: &str, staging: &Path, staged: &Staged) -> Result<(), BuildError> {
    let root = crate::paths::home().join("outputs");
    fs_err::create_dir_all(&root)?;
    let tmp = tempfile::Builder::new().prefix(".tmp-").tempdir_in(&root)?;
    for name in &staged.files {
        fs_err::copy(staging.join(name), tmp.path().join(name))?;
    }
    let entry = serde_json::to_vec_pretty(&CacheEntry {
        staged: staged.clone(),
    })
    .map_err(std::io::Error::other)?;
    fs_err::write(tmp.path().join("entry.json"), entry)?;
    let dest = root.join(key);
    if dest.exists() {
        fs_err::remove_dir_all(&dest)?;
    }
    fs_err::rename(tmp.keep(), &dest)?;
    Ok(())
}

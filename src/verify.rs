//! `hermetic verify`: prove a release is what its record says.
//!
//! Two modes. `--checksums <dir>` re-hashes the artifacts in a release
//! directory against `SHA256SUMS` and against the outputs every build
//! record there lists, without rebuilding. `<record>` rebuilds from the
//! recorded inputs (the same recipe bytes, builder image, fetched files and
//! `SOURCE_DATE_EPOCH`) into a scratch directory and compares the outputs
//! byte for byte; on a difference it unpacks both archives and names every
//! differing file, with both sizes and hashes, a short diff for text and the
//! differing sections for ELF files. An input that can no longer be had
//! (recipe changed, image gone) is an error, not a mismatch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::archive;
use crate::manifest::BuildRecord;

/// The verdict.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// `checksums` (re-hashed against SHA256SUMS) or `rebuild` (built again from the record).
    pub mode: &'static str,
    /// Whether every output matched.
    pub matched: bool,
    /// One line a release page can quote: the verdict, what was verified
    /// and against what.
    pub summary: String,
    /// Each output file, expected against found.
    pub outputs: Vec<OutputCheck>,
    /// Files inside archives that differ (rebuild mode).
    pub differences: Vec<FileDiff>,
}

/// One output file, expected against found.
#[derive(Debug, Clone, Serialize)]
pub struct OutputCheck {
    /// File name of the output.
    pub name: String,
    /// Hex SHA-256 the record or checksum list gives.
    pub expected_sha256: String,
    /// Hex SHA-256 found; `None` when the file is missing.
    pub actual_sha256: Option<String>,
    /// Whether the two agree.
    pub ok: bool,
}

/// One differing file inside an archive.
#[derive(Debug, Clone, Serialize)]
pub struct FileDiff {
    /// The output archive the file is in.
    pub archive: String,
    /// Path of the file inside the archive.
    pub path: String,
    /// The file as expected; `None` when only the new build has it.
    pub expected: Option<FileFacts>,
    /// The file as found; `None` when the new build lacks it.
    pub actual: Option<FileFacts>,
    /// Text: the first differing lines; ELF: the differing sections.
    pub detail: Vec<String>,
}

/// Size and hash of one file (or a link target).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileFacts {
    /// Size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
}

/// Errors that stop a verification (as opposed to a mismatch).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file is not a build record this hermetic reads (bad JSON or
    /// another record format).
    #[error("{} is not a build record: {reason}", path.display())]
    BadRecord {
        /// The record file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file is not an in-toto statement.
    #[error("{} is not an in-toto statement: {reason}", path.display())]
    BadStatement {
        /// The statement file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The release directory has no `SHA256SUMS`.
    #[error("{}: no SHA256SUMS there", dir.display())]
    NoSums {
        /// The release directory.
        dir: PathBuf,
    },
    /// Something the rebuild needs cannot be found.
    #[error("input missing: {what}")]
    MissingInput {
        /// What is missing, and where it was looked for.
        what: String,
    },
    /// A release document (checksum list, statement, record) names a path
    /// outside the release directory.
    #[error("{listed_in} names `{name}`, which is not a file inside the release directory")]
    OutsideRelease {
        /// The name as listed.
        name: String,
        /// The document that names it.
        listed_in: String,
    },
    /// The recorded builder image is not in the engine.
    #[error(
        "input missing: the builder image {image_id} ({reference}) is not in the engine{}",
        here.as_ref().map(|id| format!("; {reference} here is {id}, made here, not the recorded image")).unwrap_or_default()
    )]
    MissingBuilder {
        /// The recorded image ID.
        image_id: String,
        /// The recorded reference.
        reference: String,
        /// The image the same local name has here, if any.
        here: Option<String>,
    },
    /// An output archive could not be read.
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl VerifyError {
    /// A line the user can act on.
    pub fn help(&self) -> Option<String> {
        match self {
            VerifyError::MissingInput { .. } => Some(
                "verification needs the recorded inputs: the recipe at its recorded hash (--recipe), \
                 the builder image (hermetic images list) and the fetched files (cache or index)"
                    .into(),
            ),
            VerifyError::MissingBuilder { .. } => Some(
                "the record does not say which catalog inputs the builder was made from (an \
                 image given with --builder-image): `docker save` the recorded image where the \
                 release was built and `docker load` it here"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Reads and parses a build record (of this hermetic's record format).
pub fn load_record(path: &Path) -> Result<BuildRecord, VerifyError> {
    parse_record(&fs_err::read_to_string(path)?, path)
}

/// Parses the text of a build record; `path` only names it in errors.
pub fn parse_record(text: &str, path: &Path) -> Result<BuildRecord, VerifyError> {
    let bad = |reason: String| VerifyError::BadRecord {
        path: path.to_path_buf(),
        reason,
    };
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    match value.get("format").and_then(serde_json::Value::as_u64) {
        Some(f) if f == u64::from(crate::manifest::RECORD_FORMAT) => {}
        Some(f) => {
            return Err(bad(format!(
                "record format {f}; this hermetic reads format {} (use the hermetic version \
                 the record names)",
                crate::manifest::RECORD_FORMAT
            )));
        }
        None => return Err(bad("no record format number".into())),
    }
    serde_json::from_value(value).map_err(|e| bad(e.to_string()))
}

/// Reads and parses an in-toto provenance statement.
pub fn load_statement(path: &Path) -> Result<crate::provenance::Statement, VerifyError> {
    parse_statement(&fs_err::read_to_string(path)?, path)
}

/// Parses the text of an in-toto provenance statement; `path` only names it
/// in errors.
pub fn parse_statement(
    text: &str,
    path: &Path,
) -> Result<crate::provenance::Statement, VerifyError> {
    serde_json::from_str(text).map_err(|e| VerifyError::BadStatement {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// `--checksums <dir>`: every file in `SHA256SUMS`, every output a build
/// record in `dir` lists and every file a provenance statement there names
/// must be present with that hash, and they must agree with each other.
pub fn verify_checksums(dir: &Path) -> Result<VerifyReport, VerifyError> {
    let sums = dir.join(archive::SHA256SUMS);
    if !sums.is_file() {
        return Err(VerifyError::NoSums {
            dir: dir.to_path_buf(),
        });
    }
    // name → (hash, where it was first listed)
    let mut expected: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (name, hash) in archive::read_sha256sums(&sums)? {
        expected.insert(name, (hash, archive::SHA256SUMS.to_string()));
    }
    // What each build record (its outputs) and each provenance statement
    // (its subjects and byproducts) says the files' hashes are.
    let mut claims: Vec<(PathBuf, Vec<(String, String)>)> = Vec::new();
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in fs_err::read_dir(dir)? {
        paths.push(entry?.path());
    }
    paths.sort();
    for path in paths {
        let name = file_name(&path);
        if name.ends_with(".build.json") {
            let record = load_record(&path)?;
            let named = record
                .outputs
                .iter()
                .map(|o| (o.name.clone(), o.sha256.clone()))
                .collect();
            claims.push((path, named));
        } else if name.ends_with(crate::provenance::SUFFIX) {
            let named = load_statement(&path)?.named_files();
            claims.push((path, named));
        }
    }
    let mut outputs = Vec::new();
    for (source, named) in &claims {
        for (name, sha256) in named {
            if let Some((listed, first)) = expected.get(name) {
                if listed != sha256 {
                    outputs.push(OutputCheck {
                        name: format!("{name} ({first} vs {})", file_name(source)),
                        expected_sha256: sha256.clone(),
                        actual_sha256: Some(listed.clone()),
                        ok: false,
                    });
                }
            } else {
                expected.insert(name.clone(), (sha256.clone(), file_name(source)));
            }
        }
    }
    for (name, (hash, listed_in)) in &expected {
        let path = inside(dir, name, listed_in)?;
        let actual = if path.is_file() {
            Some(archive::sha256_file(&path)?.0)
        } else {
            None
        };
        let ok = actual.as_deref() == Some(hash.as_str());
        outputs.push(OutputCheck {
            name: name.clone(),
            expected_sha256: hash.clone(),
            actual_sha256: actual,
            ok,
        });
    }
    let matched = outputs.iter().all(|o| o.ok);
    let failed = outputs.iter().filter(|o| !o.ok).count();
    let summary = if matched {
        format!(
            "verified: identical: {} files in {} match SHA256SUMS and the build records there",
            outputs.len(),
            dir.display()
        )
    } else {
        format!(
            "NOT verified: {failed} of {} files in {} do not match SHA256SUMS or the build \
             records there",
            outputs.len(),
            dir.display()
        )
    };
    Ok(VerifyReport {
        mode: "checksums",
        matched,
        summary,
        outputs,
        differences: vec![],
    })
}

/// Compares, for every output a record lists, the rebuilt file and the
/// released one (beside the record) with the recorded hash; then the
/// rebuilt record and provenance statement with the released ones, byte
/// for byte. Where they differ, the released and rebuilt archives are
/// unpacked and every differing file named.
pub fn compare_outputs(
    record: &BuildRecord,
    record_path: &Path,
    rebuilt_dir: &Path,
) -> Result<VerifyReport, VerifyError> {
    let release_dir = record_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut outputs = Vec::new();
    let mut differences = Vec::new();
    let hash_of = |p: &Path| -> Result<Option<String>, VerifyError> {
        Ok(if p.is_file() {
            Some(archive::sha256_file(p)?.0)
        } else {
            None
        })
    };
    for out in &record.outputs {
        let rebuilt = inside(rebuilt_dir, &out.name, &file_name(record_path))?;
        let released = inside(release_dir, &out.name, &file_name(record_path))?;
        let rebuilt_hash = hash_of(&rebuilt)?;
        let released_hash = hash_of(&released)?;
        let rebuilt_ok = rebuilt_hash.as_deref() == Some(out.sha256.as_str());
        let released_ok =
            released_hash.is_none() || released_hash.as_deref() == Some(out.sha256.as_str());
        outputs.push(OutputCheck {
            name: format!("{} (rebuilt)", out.name),
            expected_sha256: out.sha256.clone(),
            actual_sha256: rebuilt_hash.clone(),
            ok: rebuilt_ok,
        });
        if released_hash.is_some() {
            outputs.push(OutputCheck {
                name: format!("{} (released)", out.name),
                expected_sha256: out.sha256.clone(),
                actual_sha256: released_hash.clone(),
                ok: released_ok,
            });
        }
        if (rebuilt_ok && released_ok) || rebuilt_hash.is_none() {
            continue;
        }
        if released_hash.is_none() {
            return Err(VerifyError::MissingInput {
                what: format!(
                    "the released {} (needed to show what differs)",
                    released.display()
                ),
            });
        }
        if released_hash != rebuilt_hash {
            if archive::archive_stem(&out.name).is_some() {
                differences.extend(compare_archives(&out.name, &released, &rebuilt)?);
            } else {
                differences.extend(compare_files(&out.name, &out.name, &released, &rebuilt)?);
            }
        }
    }
    // The record and the statement describe the build; a rebuild from the
    // same inputs must write them byte for byte as well. (A release made
    // before statements existed has none, and that is not a mismatch.)
    let stem = record
        .outputs
        .iter()
        .find_map(|o| archive::archive_stem(&o.name));
    if let Some(stem) = stem {
        let statement = format!("{stem}{}", crate::provenance::SUFFIX);
        for (released, name, required) in [
            (
                record_path.to_path_buf(),
                format!("{stem}.build.json"),
                true,
            ),
            (
                inside(release_dir, &statement, &file_name(record_path))?,
                statement.clone(),
                false,
            ),
        ] {
            if !required && !released.is_file() {
                continue;
            }
            let (expected, _) = archive::sha256_file(&released)?;
            let rebuilt = rebuilt_dir.join(&name);
            let actual = hash_of(&rebuilt)?;
            let ok = actual.as_deref() == Some(expected.as_str());
            outputs.push(OutputCheck {
                name: format!("{name} (rebuilt vs released)"),
                expected_sha256: expected,
                actual_sha256: actual.clone(),
                ok,
            });
            if !ok && actual.is_some() {
                differences.extend(compare_files(&name, &name, &released, &rebuilt)?);
            }
        }
    }
    let matched = outputs.iter().all(|o| o.ok);
    let failed = outputs.iter().filter(|o| !o.ok).count();
    let what = format!(
        "{} {} for glibc {}",
        record.name, record.version, record.glibc
    );
    let summary = if matched {
        format!(
            "verified: identical: {what} rebuilt from {}: {} outputs, rebuilt and released, \
             the recorded bytes (archive sha256 {})",
            file_name(record_path),
            record.outputs.len(),
            record
                .outputs
                .iter()
                .find(|o| archive::archive_stem(&o.name).is_some())
                .map(|o| o.sha256.as_str())
                .unwrap_or("-")
        )
    } else {
        format!(
            "NOT verified: {failed} of {} checks of {what}'s outputs differ from their rebuild \
             from {}",
            outputs.len(),
            file_name(record_path)
        )
    };
    Ok(VerifyReport {
        mode: "rebuild",
        matched,
        summary,
        outputs,
        differences,
    })
}

/// Unpacks two archives and lists every file that differs between them.
pub fn compare_archives(
    name: &str,
    expected: &Path,
    actual: &Path,
) -> Result<Vec<FileDiff>, VerifyError> {
    let work = tempfile::tempdir()?;
    let (a, b) = (work.path().join("expected"), work.path().join("actual"));
    for (archive_path, dest) in [(expected, &a), (actual, &b)] {
        fs_err::create_dir_all(dest)?;
        archive::unpack_archive(archive_path, dest, archive::unpack_limit()?)?;
    }
    let left = listing(&a)?;
    let right = listing(&b)?;
    let mut diffs = Vec::new();
    let paths: std::collections::BTreeSet<&String> = left.keys().chain(right.keys()).collect();
    for path in paths {
        match (left.get(path), right.get(path)) {
            (Some(l), Some(r)) if l == r => {}
            (Some(_), Some(_)) => {
                diffs.extend(compare_files(name, path, &a.join(path), &b.join(path))?)
            }
            (l, r) => diffs.push(FileDiff {
                archive: name.to_string(),
                path: path.clone(),
                expected: l.cloned(),
                actual: r.cloned(),
                detail: vec![if l.is_none() {
                    "only in the rebuild".into()
                } else {
                    "missing from the rebuild".into()
                }],
            }),
        }
    }
    Ok(diffs)
}

/// Every file (and symlink, as its target) under `root`, with size, hash
/// and the executable bit folded into the hash.
fn listing(root: &Path) -> Result<BTreeMap<String, FileFacts>, VerifyError> {
    use std::os::unix::fs::PermissionsExt;
    let mut map = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        crate::cancel::check()?;
        let entry = entry.map_err(std::io::Error::other)?;
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap_or(entry.path())
            .to_string_lossy()
            .into_owned();
        let meta = entry.path().symlink_metadata()?;
        let facts = if meta.file_type().is_symlink() {
            let target = fs_err::read_link(entry.path())?
                .to_string_lossy()
                .into_owned();
            FileFacts {
                size: target.len() as u64,
                sha256: format!("symlink:{target}"),
            }
        } else if meta.is_file() {
            let (hash, size) = archive::sha256_file(entry.path())?;
            let exec = if meta.permissions().mode() & 0o111 != 0 {
                "+x"
            } else {
                ""
            };
            FileFacts {
                size,
                sha256: format!("{hash}{exec}"),
            }
        } else {
            continue;
        };
        map.insert(rel, facts);
    }
    Ok(map)
}

/// Describes how two versions of one file differ.
fn compare_files(
    archive: &str,
    path: &str,
    expected: &Path,
    actual: &Path,
) -> Result<Vec<FileDiff>, VerifyError> {
    let (size_a, size_b) = (
        fs_err::metadata(expected)?.len(),
        fs_err::metadata(actual)?.len(),
    );
    if size_a.max(size_b) > DETAIL_LIMIT {
        return compare_big_files(archive, path, expected, actual);
    }
    let a = fs_err::read(expected)?;
    let b = fs_err::read(actual)?;
    if a == b {
        return Ok(vec![]);
    }
    let facts = |d: &[u8]| FileFacts {
        size: d.len() as u64,
        sha256: archive::sha256_bytes(d),
    };
    let detail = if a.starts_with(b"\x7fELF") && b.starts_with(b"\x7fELF") {
        elf_section_diff(&a, &b)
    } else if let (Ok(ta), Ok(tb)) = (std::str::from_utf8(&a), std::str::from_utf8(&b)) {
        text_diff(ta, tb)
    } else {
        let first = a
            .iter()
            .zip(&b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len()));
        vec![format!("binary; first difference at byte {first}")]
    };
    Ok(vec![FileDiff {
        archive: archive.to_string(),
        path: path.to_string(),
        expected: Some(facts(&a)),
        actual: Some(facts(&b)),
        detail,
    }])
}

/// Files larger than this (a bundle archive, a libtorch) are compared
/// streaming, by hash and first differing byte, never read whole.
const DETAIL_LIMIT: u64 = 64 << 20;

/// [`compare_files`] for big files: memory stays bounded by two buffers.
fn compare_big_files(
    archive: &str,
    path: &str,
    expected: &Path,
    actual: &Path,
) -> Result<Vec<FileDiff>, VerifyError> {
    use sha2::Digest;
    // One pass over both: each file is read once, hashed, and compared
    // chunk by chunk for the first differing byte.
    let mut a = fs_err::File::open(expected)?;
    let mut b = fs_err::File::open(actual)?;
    let (mut hash_a, mut hash_b) = (sha2::Sha256::new(), sha2::Sha256::new());
    let (mut buf_a, mut buf_b) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    let (mut size_a, mut size_b) = (0u64, 0u64);
    let mut first = None;
    loop {
        crate::cancel::check()?;
        let n = fill(&mut a, &mut buf_a)?;
        let m = fill(&mut b, &mut buf_b)?;
        if n == 0 && m == 0 {
            break;
        }
        if first.is_none() {
            let common = n.min(m);
            first = match buf_a[..common]
                .iter()
                .zip(&buf_b[..common])
                .position(|(x, y)| x != y)
            {
                Some(i) => Some(size_a + i as u64),
                // One file ended inside this chunk: they differ where it did.
                None if n != m => Some(size_a + common as u64),
                None => None,
            };
        }
        hash_a.update(&buf_a[..n]);
        hash_b.update(&buf_b[..m]);
        size_a += n as u64;
        size_b += m as u64;
    }
    let Some(first) = first else {
        return Ok(vec![]);
    };
    let (hash_a, hash_b) = (
        hex::encode(hash_a.finalize()),
        hex::encode(hash_b.finalize()),
    );
    Ok(vec![FileDiff {
        archive: archive.to_string(),
        path: path.to_string(),
        expected: Some(FileFacts {
            size: size_a,
            sha256: hash_a,
        }),
        actual: Some(FileFacts {
            size: size_b,
            sha256: hash_b,
        }),
        detail: vec![format!("binary; first difference at byte {first}")],
    }])
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn fill(file: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The first few differing lines, `-` expected / `+` rebuilt.
fn text_diff(a: &str, b: &str) -> Vec<String> {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let mut out = Vec::new();
    for i in 0..la.len().max(lb.len()) {
        let (x, y) = (la.get(i), lb.get(i));
        if x != y {
            if let Some(x) = x {
                out.push(format!("line {}: - {x}", i + 1));
            }
            if let Some(y) = y {
                out.push(format!("line {}: + {y}", i + 1));
            }
            if out.len() >= 10 {
                out.push("…".into());
                break;
            }
        }
    }
    out
}

/// Names the sections whose bytes differ.
fn elf_section_diff(a: &[u8], b: &[u8]) -> Vec<String> {
    let sections = |data: &[u8]| -> Option<BTreeMap<String, Vec<u8>>> {
        crate::elf::reader::sections(Path::new("(rebuilt file)"), data)
            .ok()
            .flatten()
    };
    match (sections(a), sections(b)) {
        (Some(x), Some(y)) => {
            let names: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            let differing: Vec<String> = names
                .into_iter()
                .filter(|n| x.get(*n) != y.get(*n))
                .cloned()
                .collect();
            if differing.is_empty() {
                vec!["ELF: sections equal; headers or padding differ".into()]
            } else {
                vec![format!("ELF sections differ: {}", differing.join(", "))]
            }
        }
        _ => vec!["ELF: could not parse both files".into()],
    }
}

/// `dir/name` for a file a release's own documents name; a name that is
/// absolute, climbs out with `..` or resolves through a symlink to a place
/// outside `dir` is refused, naming the document (the documents may come
/// from anyone, and verify should not read elsewhere).
pub fn inside(dir: &Path, name: &str, listed_in: &str) -> Result<PathBuf, VerifyError> {
    let path = Path::new(name);
    let plain = !name.is_empty()
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    let outside = || VerifyError::OutsideRelease {
        name: name.to_string(),
        listed_in: listed_in.to_string(),
    };
    if !plain {
        return Err(outside());
    }
    // Lexically inside is not enough: through a symlink (`evil ->
    // /etc/shadow`, or a directory link) the name may still resolve
    // elsewhere. Resolve the longest part of it that exists.
    let root = fs_err::canonicalize(dir)?;
    let joined = dir.join(path);
    let mut existing = joined.as_path();
    while existing.symlink_metadata().is_err() {
        match existing.parent() {
            Some(parent) if parent.starts_with(dir) && parent != dir => existing = parent,
            _ => return Ok(joined),
        }
    }
    match std::fs::canonicalize(existing) {
        Ok(real) if real.starts_with(&root) => Ok(joined),
        // Outside, or a dangling link (whose target is no business of ours).
        _ => Err(outside()),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record_reader fuzz target's seeds are records and statements of
    /// the current format, so fuzzing starts past the format check.
    #[test]
    fn the_fuzz_seeds_are_current_records_and_statements() {
        let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/record_reader");
        let record = seeds.join("demo.build.json");
        parse_record(&fs_err::read_to_string(&record).unwrap(), &record).unwrap();
        let statement = seeds.join("demo.intoto.json");
        parse_statement(&fs_err::read_to_string(&statement).unwrap(), &statement).unwrap();
    }

    /// Files above DETAIL_LIMIT (a released archive) are compared by hash
    /// and first differing byte without being read whole.
    #[test]
    fn big_files_are_compared_streaming() {
        use std::io::{Seek, Write};
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.tar.gz"), dir.path().join("b.tar.gz"));
        let at = DETAIL_LIMIT + 12_345;
        for (path, byte) in [(&a, b'a'), (&b, b'b')] {
            let mut f = fs_err::File::create(path).unwrap();
            f.set_len(DETAIL_LIMIT + 1_000_000).unwrap();
            f.seek(std::io::SeekFrom::Start(at)).unwrap();
            f.write_all(&[byte]).unwrap();
        }
        let diffs = compare_files("x.tar.gz", "x.tar.gz", &a, &b).unwrap();
        assert_eq!(diffs.len(), 1);
        assert_eq!(
            diffs[0].detail,
            vec![format!("binary; first difference at byte {at}")]
        );
        assert_eq!(
            diffs[0].expected.as_ref().unwrap().size,
            DETAIL_LIMIT + 1_000_000
        );
        assert!(compare_files("x", "x", &a, &a).unwrap().is_empty());
        // A shorter rebuilt file differs where it ends.
        let c = dir.path().join("c.tar.gz");
        fs_err::File::create(&c).unwrap().set_len(at).unwrap();
        let diffs = compare_files("x", "x", &a, &c).unwrap();
        assert_eq!(
            diffs[0].detail,
            vec![format!("binary; first difference at byte {at}")]
        );
    }

    #[test]
    fn text_diffs_show_both_sides() {
        let d = text_diff("a\nb\nc\n", "a\nB\nc\n");
        assert_eq!(d, vec!["line 2: - b", "line 2: + B"]);
    }

    #[test]
    fn elf_files_are_compared_by_section() {
        let original: &[u8] = include_bytes!("../tests/fixtures/sbom/elf/libfoo-5e6f7a8b.so.1");
        let elf = goblin::elf::Elf::parse(original).unwrap();
        let text = elf
            .section_headers
            .iter()
            .find(|sh| elf.shdr_strtab.get_at(sh.sh_name) == Some(".text"))
            .unwrap();
        let mut changed = original.to_vec();
        changed[text.sh_offset as usize] ^= 0xff;
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.so"), dir.path().join("b.so"));
        fs_err::write(&a, original).unwrap();
        fs_err::write(&b, &changed).unwrap();
        let diffs = compare_files("x.tar.gz", "lib/libfoo.so.1", &a, &b).unwrap();
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].detail, vec!["ELF sections differ: .text"]);
        let (ea, eb) = (diffs[0].expected.as_ref(), diffs[0].actual.as_ref());
        assert_eq!(ea.map(|f| f.size), eb.map(|f| f.size));
        assert_ne!(ea.map(|f| &f.sha256), eb.map(|f| &f.sha256));
    }

    #[test]
    fn records_of_another_format_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.build.json");
        let mut doc = serde_json::to_value(crate::manifest::sample_record()).unwrap();
        fs_err::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
        assert_eq!(
            load_record(&path).unwrap(),
            crate::manifest::sample_record()
        );
        doc["format"] = 1.into();
        fs_err::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
        let err = load_record(&path).unwrap_err().to_string();
        assert!(
            err.contains("old.build.json") && err.contains("record format 1"),
            "{err}"
        );
        fs_err::write(&path, b"{\"name\": \"x\"}").unwrap();
        let err = load_record(&path).unwrap_err().to_string();
        assert!(err.contains("no record format"), "{err}");
    }

    #[test]
    fn names_that_leave_the_release_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        fs_err::write(outside.path().join("secret"), b"x").unwrap();
        let dir = outside.path().join("release");
        fs_err::create_dir(&dir).unwrap();
        let hash = archive::sha256_bytes(b"x");
        // In SHA256SUMS.
        fs_err::write(
            dir.join(archive::SHA256SUMS),
            format!("{hash}  ../secret\n"),
        )
        .unwrap();
        let err = verify_checksums(&dir).unwrap_err().to_string();
        assert!(err.contains("SHA256SUMS names `../secret`"), "{err}");
        // In a build record's outputs, in both modes.
        archive::write_sha256sums(&dir, &[]).unwrap();
        let mut record = crate::manifest::sample_record();
        record.outputs[0].name = "/etc/hostname".into();
        let record_path = dir.join("demo.build.json");
        fs_err::write(&record_path, record.to_canonical_json().unwrap()).unwrap();
        let err = verify_checksums(&dir).unwrap_err().to_string();
        assert!(
            err.contains("demo.build.json names `/etc/hostname`"),
            "{err}"
        );
        let err = compare_outputs(&record, &record_path, outside.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("`/etc/hostname`"), "{err}");
    }

    #[test]
    fn names_that_resolve_through_a_symlink_out_of_the_release_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::os::unix::fs::symlink("/etc/passwd", d.join("hermetic.toml")).unwrap();
        std::os::unix::fs::symlink("/etc", d.join("sub")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/x", d.join("dangling")).unwrap();
        fs_err::write(d.join("real"), b"x").unwrap();
        std::os::unix::fs::symlink("real", d.join("alias")).unwrap();
        // The recipe path of a record is checked the same way (app::verify).
        for name in [
            "hermetic.toml",
            "sub/passwd",
            "sub/missing",
            "dangling",
            "/etc/passwd",
        ] {
            let err = inside(d, name, "demo.build.json").unwrap_err().to_string();
            assert!(
                err.contains(&format!("demo.build.json names `{name}`")),
                "{err}"
            );
        }
        assert_eq!(inside(d, "alias", "x").unwrap(), d.join("alias"));
        assert_eq!(inside(d, "missing/x", "x").unwrap(), d.join("missing/x"));
        // The released copy in rebuild mode too.
        let (mut record, record_path) = release(d);
        record.outputs[0].name = "hermetic.toml".into();
        let err = compare_outputs(&record, &record_path, d)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`hermetic.toml`"), "{err}");
    }

    #[test]
    fn checksums_catch_a_changed_byte() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("a.tar.gz"), b"hello").unwrap();
        let (hash, _) = archive::sha256_file(&dir.path().join("a.tar.gz")).unwrap();
        archive::write_sha256sums(dir.path(), &[("a.tar.gz".into(), hash)]).unwrap();
        assert!(verify_checksums(dir.path()).unwrap().matched);
        fs_err::write(dir.path().join("a.tar.gz"), b"hellO").unwrap();
        let report = verify_checksums(dir.path()).unwrap();
        assert!(!report.matched);
        assert_eq!(report.outputs[0].name, "a.tar.gz");
    }

    /// A release directory as a build writes it: archive, SBOM, record,
    /// statement and SHA256SUMS, with matching hashes.
    fn release(dir: &Path) -> (BuildRecord, PathBuf) {
        let mut record = crate::manifest::sample_record();
        record.outputs.truncate(1);
        record.outputs[0].name = "demo.tar.gz".into();
        fs_err::write(dir.join("demo.tar.gz"), b"archive bytes").unwrap();
        record.outputs[0].sha256 = archive::sha256_file(&dir.join("demo.tar.gz")).unwrap().0;
        let bytes = record.to_canonical_json().unwrap();
        fs_err::write(dir.join("demo.build.json"), &bytes).unwrap();
        let statement = crate::provenance::statement(
            &record,
            "demo.build.json",
            &archive::sha256_bytes(&bytes),
        );
        fs_err::write(
            dir.join("demo.intoto.json"),
            statement.to_canonical_json().unwrap(),
        )
        .unwrap();
        let sums: Vec<(String, String)> = ["demo.tar.gz", "demo.build.json", "demo.intoto.json"]
            .iter()
            .map(|n| (n.to_string(), archive::sha256_file(&dir.join(n)).unwrap().0))
            .collect();
        archive::write_sha256sums(dir, &sums).unwrap();
        (record, dir.join("demo.build.json"))
    }

    #[test]
    fn checksums_check_what_the_statement_names() {
        let dir = tempfile::tempdir().unwrap();
        release(dir.path());
        assert!(verify_checksums(dir.path()).unwrap().matched);
        // A statement whose subject disagrees with SHA256SUMS is named.
        let path = dir.path().join("demo.intoto.json");
        let text = fs_err::read_to_string(&path).unwrap();
        let mut s: crate::provenance::Statement = serde_json::from_str(&text).unwrap();
        s.subject[0].digest.insert("sha256".into(), "0".repeat(64));
        fs_err::write(&path, s.to_canonical_json().unwrap()).unwrap();
        let (hash, _) = archive::sha256_file(&path).unwrap();
        let mut sums = archive::read_sha256sums(&dir.path().join(archive::SHA256SUMS)).unwrap();
        sums.retain(|(n, _)| n != "demo.intoto.json");
        sums.push(("demo.intoto.json".into(), hash));
        archive::write_sha256sums(dir.path(), &sums).unwrap();
        let report = verify_checksums(dir.path()).unwrap();
        assert!(!report.matched);
        let bad: Vec<&str> = report
            .outputs
            .iter()
            .filter(|o| !o.ok)
            .map(|o| o.name.as_str())
            .collect();
        assert_eq!(bad, ["demo.tar.gz (SHA256SUMS vs demo.intoto.json)"]);
        // Garbage where a statement should be is an error naming the file.
        fs_err::write(&path, b"{").unwrap();
        let err = verify_checksums(dir.path()).unwrap_err().to_string();
        assert!(err.contains("demo.intoto.json"), "{err}");
    }

    #[test]
    fn rebuild_compares_record_and_statement_too() {
        let released = tempfile::tempdir().unwrap();
        let (record, record_path) = release(released.path());
        let rebuilt = tempfile::tempdir().unwrap();
        for name in ["demo.tar.gz", "demo.build.json", "demo.intoto.json"] {
            fs_err::copy(released.path().join(name), rebuilt.path().join(name)).unwrap();
        }
        let report = compare_outputs(&record, &record_path, rebuilt.path()).unwrap();
        assert!(report.matched, "{report:?}");
        assert_eq!(report.outputs.len(), 4, "{report:?}");
        // A rebuilt statement that differs is a mismatch, with a line diff.
        let path = rebuilt.path().join("demo.intoto.json");
        let text = fs_err::read_to_string(&path).unwrap();
        fs_err::write(&path, text.replace("\"demo\"", "\"other\"")).unwrap();
        let report = compare_outputs(&record, &record_path, rebuilt.path()).unwrap();
        assert!(!report.matched);
        assert_eq!(report.differences.len(), 1, "{report:?}");
        assert_eq!(report.differences[0].path, "demo.intoto.json");
        assert!(report.differences[0].detail[0].starts_with("line "));
    }
}

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
    pub mode: &'static str,
    pub matched: bool,
    pub outputs: Vec<OutputCheck>,
    /// Files inside archives that differ (rebuild mode).
    pub differences: Vec<FileDiff>,
}

/// One output file, expected against found.
#[derive(Debug, Clone, Serialize)]
pub struct OutputCheck {
    pub name: String,
    pub expected_sha256: String,
    pub actual_sha256: Option<String>,
    pub ok: bool,
}

/// One differing file inside an archive.
#[derive(Debug, Clone, Serialize)]
pub struct FileDiff {
    pub archive: String,
    pub path: String,
    pub expected: Option<FileFacts>,
    pub actual: Option<FileFacts>,
    /// Text: the first differing lines; ELF: the differing sections.
    pub detail: Vec<String>,
}

/// Size and hash of one file (or a link target).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileFacts {
    pub size: u64,
    pub sha256: String,
}

/// Errors that stop a verification (as opposed to a mismatch).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{} is not a build record: {reason}", path.display())]
    BadRecord { path: PathBuf, reason: String },
    #[error("{}: no SHA256SUMS there", dir.display())]
    NoSums { dir: PathBuf },
    #[error("input missing: {what}")]
    MissingInput { what: String },
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
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
            _ => None,
        }
    }
}

/// Reads and parses a build record.
pub fn load_record(path: &Path) -> Result<BuildRecord, VerifyError> {
    let text = fs_err::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| VerifyError::BadRecord {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// `--checksums <dir>`: every file in `SHA256SUMS` and every output every
/// build record in `dir` names must be present with its recorded hash.
pub fn verify_checksums(dir: &Path) -> Result<VerifyReport, VerifyError> {
    let sums = dir.join(archive::SHA256SUMS);
    if !sums.is_file() {
        return Err(VerifyError::NoSums {
            dir: dir.to_path_buf(),
        });
    }
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    for (name, hash) in archive::read_sha256sums(&sums)? {
        expected.insert(name, hash);
    }
    let mut records = Vec::new();
    for entry in fs_err::read_dir(dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with(".build.json"))
        {
            records.push(path);
        }
    }
    records.sort();
    let mut outputs = Vec::new();
    for record_path in &records {
        let record = load_record(record_path)?;
        for out in &record.outputs {
            if let Some(listed) = expected.get(&out.name) {
                if listed != &out.sha256 {
                    outputs.push(OutputCheck {
                        name: format!("{} (SHA256SUMS vs {})", out.name, file_name(record_path)),
                        expected_sha256: out.sha256.clone(),
                        actual_sha256: Some(listed.clone()),
                        ok: false,
                    });
                }
            } else {
                expected.insert(out.name.clone(), out.sha256.clone());
            }
        }
    }
    for (name, hash) in &expected {
        let path = dir.join(name);
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
    Ok(VerifyReport {
        mode: "checksums",
        matched,
        outputs,
        differences: vec![],
    })
}

/// Compares, for every output a record lists, the rebuilt file and the
/// released one (beside the record) with the recorded hash. Where they
/// differ, the released and rebuilt archives are unpacked and every
/// differing file named.
pub fn compare_outputs(
    record: &BuildRecord,
    release_dir: &Path,
    rebuilt_dir: &Path,
) -> Result<VerifyReport, VerifyError> {
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
        let rebuilt = rebuilt_dir.join(&out.name);
        let released = release_dir.join(&out.name);
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
            if out.name.ends_with(".tar.gz") {
                differences.extend(compare_archives(&out.name, &released, &rebuilt)?);
            } else {
                differences.extend(compare_files(&out.name, &out.name, &released, &rebuilt)?);
            }
        }
    }
    let matched = outputs.iter().all(|o| o.ok);
    Ok(VerifyReport {
        mode: "rebuild",
        matched,
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
        let gz = flate2::read::GzDecoder::new(fs_err::File::open(archive_path)?);
        archive::unpack_safe(gz, dest, 64 << 30)?;
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
    let a = fs_err::read(expected)?;
    let b = fs_err::read(actual)?;
    if a == b {
        return Ok(vec![]);
    }
    let facts = |d: &[u8]| {
        use sha2::Digest;
        FileFacts {
            size: d.len() as u64,
            sha256: hex::encode(sha2::Sha256::digest(d)),
        }
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
        let elf = goblin::elf::Elf::parse(data).ok()?;
        let mut map = BTreeMap::new();
        for sh in &elf.section_headers {
            let name = elf
                .shdr_strtab
                .get_at(sh.sh_name)
                .unwrap_or("?")
                .to_string();
            let bytes = if sh.sh_type == goblin::elf::section_header::SHT_NOBITS {
                Vec::new()
            } else {
                let start = sh.sh_offset as usize;
                data.get(start..start.saturating_add(sh.sh_size as usize))
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default()
            };
            map.insert(name, bytes);
        }
        Some(map)
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

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_diffs_show_both_sides() {
        let d = text_diff("a\nb\nc\n", "a\nB\nc\n");
        assert_eq!(d, vec!["line 2: - b", "line 2: + B"]);
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
}

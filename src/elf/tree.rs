//! A directory or tar archive -> a [`Tree`]: every entry's kind (file,
//! symlink, hard link) and the [`ElfFacts`] of every ELF file, read in
//! parallel with rayon.
//!
//! Archives are read straight from the tar stream (optionally gzip): nothing
//! is extracted, links are recorded and never followed outside the tree, and
//! an entry that escapes the archive root is an error. Path lookups inside
//! the tree follow symlinks component by component, like the kernel does,
//! but never leave the tree.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use rayon::prelude::*;

use super::ElfError;
use super::reader::{ElfFacts, has_elf_magic, read_elf};
use super::search::{expand_origin, parent_dir};

/// How many leading bytes decide what a file is.
const SNIFF_LEN: u64 = 512;
/// The largest ELF entry of an archive that is read into memory and parsed.
/// goblin parses from a byte slice and a tar stream cannot seek, so an ELF
/// entry is held whole while it is parsed; a bigger one (libtorch, CUDA
/// libraries, or a gzip bomb) is written to an unlinked temporary file and
/// parsed from a read-only mapping of it: disk, and page cache the kernel
/// can drop, instead of the process's own memory.
pub const MAX_ARCHIVE_ELF: u64 = 128 << 20;
/// The largest ELF entry audited at all from an archive (through a temporary
/// file): a bigger one is a finding naming its size, and its bytes are read
/// through, never kept.
pub const MAX_SPILLED_ELF: u64 = 16 << 30;
/// Bytes of archive entries held at once: when a batch reaches this, it is
/// parsed in parallel and dropped before the stream is read on. With
/// [`MAX_ARCHIVE_ELF`] this bounds the audit's memory by a constant, whatever
/// the archive's size.
const ARCHIVE_BATCH_BYTES: u64 = 64 << 20;
/// Symlink hops before a lookup gives up (Linux's own limit).
const MAX_SYMLINK_HOPS: usize = 40;

/// Links read from a tar stream, by path.
type Links = Vec<(String, Entry)>;

/// One examined file: its facts, or what made it unreadable.
type Examined = Result<(String, Option<ElfFacts>), (String, ElfError)>;

/// One entry of a tree, keyed by its `/`-separated path relative to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file that is not ELF.
    File,
    /// A regular ELF file; the index into [`Tree::elves`].
    Elf(usize),
    /// A symbolic link and its target as written.
    Symlink(String),
    /// A tar hard link to another entry (path relative to the root).
    HardLink(String),
}

/// Everything the audit and the repair planner know about a tree of files.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// The directory or archive the tree was read from.
    pub root: PathBuf,
    /// Every file and link (directories are implied).
    pub entries: BTreeMap<String, Entry>,
    /// Facts of every ELF file, sorted by path.
    pub elves: Vec<ElfFacts>,
    /// File name -> paths with that name, for "exists elsewhere" answers.
    by_name: BTreeMap<String, Vec<String>>,
    /// Files that carry the ELF magic but do not parse, or are named like a
    /// shared library but are not ELF: path and what is wrong, sorted. The
    /// audit reports each as a finding and goes on with the others.
    pub corrupt: Vec<(String, String)>,
}

/// Where ld.so would find one `DT_NEEDED` library of one file, within the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Found at this real path (links followed) inside the tree.
    Found(String),
    /// Not on the file's `$ORIGIN` search path; `elsewhere` lists tree files
    /// with that name that the search path misses.
    Missing {
        /// Tree files with that name that the search path misses.
        elsewhere: Vec<String>,
    },
}

/// Whether a file name looks like a shared library: `*.so` or `*.so.N[.M…]`.
pub fn looks_like_shared_library(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.ends_with(".so") {
        return true;
    }
    name.match_indices(".so.").any(|(at, _)| {
        let suffix = &name[at + 4..];
        !suffix.is_empty()
            && suffix
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// GNU ld scripts (e.g. `libc.so` in a `-dev` package) are text files named
/// like libraries; they are legitimate and never loaded by ld.so.
fn is_linker_script(prefix: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(prefix) else {
        return false;
    };
    ["GNU ld script", "GROUP", "INPUT", "OUTPUT_FORMAT"]
        .iter()
        .any(|k| text.contains(k))
}

/// Decides what a file is from its bytes (all of them when they carry the ELF
/// magic, else at least the first [`SNIFF_LEN`]).
fn examine(rel: &str, bytes: &[u8]) -> Result<Option<ElfFacts>, ElfError> {
    if has_elf_magic(bytes) {
        return read_elf(Path::new(rel), bytes);
    }
    if looks_like_shared_library(rel) && !is_linker_script(bytes) {
        let reason = if bytes.is_empty() {
            "the file is empty"
        } else {
            "no ELF magic"
        };
        return Err(ElfError::NotElf {
            path: PathBuf::from(rel),
            reason: reason.into(),
        });
    }
    Ok(None)
}

impl Tree {
    /// Reads a directory, a `.tar`, `.tar.gz`/`.tgz` or `.tar.zst`, or a single file
    /// (a tree of one entry).
    pub fn scan(path: &Path) -> Result<Tree, ElfError> {
        let io = |source| ElfError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        let name = path.to_string_lossy();
        if meta.is_dir() {
            Self::scan_dir(path)
        } else if crate::archive::archive_stem(&name).is_some() {
            let archive_error = |e| match e {
                crate::archive::ArchiveError::Io(e) => io(e),
                e if e.is_corrupt() => ElfError::CorruptArchive(e),
                other => io(std::io::Error::other(other.to_string())),
            };
            let mut reader = crate::archive::open_archive(path).map_err(archive_error)?;
            let (links, examined) = Self::read_tar(path, &mut reader)?;
            // Only an intact archive is worth reporting on.
            reader.finish().map_err(archive_error)?;
            Self::assemble(path.to_path_buf(), links, examined)
        } else {
            // One file: it must be an ELF file, or there is nothing to audit.
            let bytes = std::fs::read(path).map_err(io)?;
            if !has_elf_magic(&bytes) {
                return Err(ElfError::Malformed {
                    path: path.to_path_buf(),
                    reason: if bytes.is_empty() {
                        "the file is empty".into()
                    } else {
                        "no ELF magic (audit takes an ELF file, a directory or an archive)".into()
                    },
                });
            }
            read_elf(path, &bytes)?;
            let rel = path
                .file_name()
                .map_or_else(|| name.to_string(), |n| n.to_string_lossy().into_owned());
            let root = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf();
            Ok(Self::assemble(
                root,
                vec![],
                examine_all(vec![(rel, bytes)]),
            )?)
        }
    }

    fn scan_dir(root: &Path) -> Result<Tree, ElfError> {
        let mut links = Vec::new();
        let mut files = Vec::new();
        for entry in walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
        {
            crate::cancel::check().map_err(|source| ElfError::Io {
                path: root.to_path_buf(),
                source,
            })?;
            let entry = entry.map_err(|e| ElfError::Io {
                path: e.path().unwrap_or(root).to_path_buf(),
                source: e.into(),
            })?;
            let Ok(rel) = entry.path().strip_prefix(root) else {
                continue;
            };
            let rel = rel_string(rel);
            let kind = entry.file_type();
            if kind.is_symlink() {
                let target = std::fs::read_link(entry.path()).map_err(|source| ElfError::Io {
                    path: entry.path().to_path_buf(),
                    source,
                })?;
                links.push((rel, Entry::Symlink(target.to_string_lossy().into_owned())));
            } else if kind.is_file() {
                files.push((rel, entry.into_path()));
            }
        }
        // Read and parse in parallel; order is kept so the first error is
        // the same on every run.
        let read: Vec<Examined> = files
            .into_par_iter()
            .map(|(rel, full)| {
                let bytes =
                    crate::cancel::check()
                        .and_then(|()| sniff(&full))
                        .map_err(|source| {
                            let e = ElfError::Io {
                                path: full.clone(),
                                source,
                            };
                            (rel.clone(), e)
                        })?;
                match examine(&rel, &bytes) {
                    Ok(facts) => Ok((rel, facts)),
                    Err(e) => Err((rel, e)),
                }
            })
            .collect();
        let mut tree = Tree {
            root: root.to_path_buf(),
            ..Tree::default()
        };
        for r in read {
            tree.insert_result(r)?;
        }
        for (rel, link) in links {
            tree.entries.insert(rel, link);
        }
        tree.finish();
        Ok(tree)
    }

    /// Inserts one examined file; a corrupt one is recorded (not an
    /// error) so that the audit of the other files goes on.
    fn insert_result(&mut self, r: Examined) -> Result<(), ElfError> {
        match r {
            Ok((rel, facts)) => self.insert_file(rel, facts),
            Err((rel, ElfError::Malformed { reason, .. })) => {
                self.corrupt
                    .push((rel.clone(), format!("is not a valid ELF file: {reason}")));
                self.insert_file(rel, None);
            }
            Err((rel, ElfError::TooLarge { size, limit, .. })) => {
                self.corrupt.push((
                    rel.clone(),
                    format!(
                        "is an ELF file of {size} bytes, too large to audit from an archive \
                         (the limit is {limit} bytes); unpack the archive and audit the directory"
                    ),
                ));
                self.insert_file(rel, None);
            }
            Err((rel, ElfError::NotElf { reason, .. })) => {
                self.corrupt.push((
                    rel.clone(),
                    format!("is named like a shared library but is not an ELF file ({reason})"),
                ));
                self.insert_file(rel, None);
            }
            Err((_, e)) => return Err(e),
        }
        Ok(())
    }

    /// The links of a tar stream and every file examined. Files are read
    /// whole when ELF (up to [`MAX_ARCHIVE_ELF`]), else only their first
    /// bytes, and parsed batch by batch so that memory stays bounded.
    fn read_tar(path: &Path, reader: impl Read) -> Result<(Links, Vec<Examined>), ElfError> {
        let archive_err = |e: std::io::Error| match crate::archive::ArchiveError::from_io(e) {
            e if e.is_corrupt() => ElfError::CorruptArchive(e),
            e => ElfError::Archive {
                path: path.to_path_buf(),
                reason: e.to_string(),
            },
        };
        let mut archive = tar::Archive::new(reader);
        let mut links = Vec::new();
        let mut examined = Vec::new();
        let mut batch = Vec::new();
        let mut batch_bytes = 0u64;
        for entry in archive.entries().map_err(archive_err)? {
            crate::cancel::check().map_err(archive_err)?;
            let mut entry = entry.map_err(archive_err)?;
            let raw = entry.path().map_err(archive_err)?.into_owned();
            let Some(rel) = safe_rel(&raw) else {
                return Err(ElfError::UnsafeArchiveEntry {
                    path: path.to_path_buf(),
                    entry: raw.to_string_lossy().into_owned(),
                });
            };
            if rel.is_empty() {
                continue;
            }
            let kind = entry.header().entry_type();
            let link_target = || -> Result<String, ElfError> {
                let target = entry.link_name().map_err(archive_err)?.unwrap_or_default();
                Ok(target.to_string_lossy().into_owned())
            };
            if kind.is_symlink() {
                links.push((rel, Entry::Symlink(link_target()?)));
            } else if kind.is_hard_link() {
                let target = link_target()?;
                let Some(target_rel) = safe_rel(Path::new(&target)) else {
                    return Err(ElfError::UnsafeArchiveEntry {
                        path: path.to_path_buf(),
                        entry: format!("{rel} -> {target}"),
                    });
                };
                links.push((rel, Entry::HardLink(target_rel)));
            } else if kind.is_file() || kind == tar::EntryType::Continuous {
                let mut bytes = Vec::new();
                (&mut entry)
                    .take(SNIFF_LEN)
                    .read_to_end(&mut bytes)
                    .map_err(archive_err)?;
                if has_elf_magic(&bytes) {
                    let size = entry.size();
                    if size > MAX_SPILLED_ELF {
                        // The tar reader skips the rest by reading it through.
                        let e = ElfError::TooLarge {
                            path: PathBuf::from(&rel),
                            size,
                            limit: MAX_SPILLED_ELF,
                        };
                        examined.push(Err((rel, e)));
                        continue;
                    }
                    if size > MAX_ARCHIVE_ELF {
                        let result =
                            examine_spilled(&rel, &bytes, &mut entry, size).map_err(archive_err)?;
                        examined.push(match result {
                            Ok(facts) => Ok((rel, facts)),
                            Err(e) => Err((rel, e)),
                        });
                        continue;
                    }
                    // Exactly the entry's size, not read_to_end's doubling;
                    // `take` holds the read to the limit whatever the header said.
                    let rest = usize::try_from(size).unwrap_or(0);
                    bytes.reserve_exact(rest.saturating_sub(bytes.len()));
                    (&mut entry)
                        .take(MAX_ARCHIVE_ELF - bytes.len() as u64)
                        .read_to_end(&mut bytes)
                        .map_err(archive_err)?;
                }
                batch_bytes += bytes.len() as u64;
                batch.push((rel, bytes));
                if batch_bytes >= ARCHIVE_BATCH_BYTES {
                    examined.extend(examine_all(std::mem::take(&mut batch)));
                    batch_bytes = 0;
                }
            }
        }
        examined.extend(examine_all(batch));
        Ok((links, examined))
    }

    fn assemble(root: PathBuf, links: Links, read: Vec<Examined>) -> Result<Tree, ElfError> {
        let mut tree = Tree {
            root,
            ..Tree::default()
        };
        for r in read {
            tree.insert_result(r)?;
        }
        for (rel, link) in links {
            tree.entries.insert(rel, link);
        }
        tree.finish();
        Ok(tree)
    }

    /// Builds a tree from facts and links directly (for tests and for
    /// callers that already hold facts).
    pub fn from_parts(
        root: PathBuf,
        elves: Vec<ElfFacts>,
        others: impl IntoIterator<Item = (String, Entry)>,
    ) -> Tree {
        let mut tree = Tree {
            root,
            ..Tree::default()
        };
        for facts in elves {
            tree.insert_file(facts.path.clone(), Some(facts));
        }
        tree.entries.extend(others);
        tree.finish();
        tree
    }

    fn insert_file(&mut self, rel: String, facts: Option<ElfFacts>) {
        match facts {
            Some(f) => {
                self.elves.push(f);
                self.entries.insert(rel, Entry::Elf(0));
            }
            None => {
                self.entries.insert(rel, Entry::File);
            }
        }
    }

    /// Sorts the facts by path and points each `Entry::Elf` at its index.
    fn finish(&mut self) {
        self.elves.sort_by(|a, b| a.path.cmp(&b.path));
        self.corrupt.sort();
        for (i, f) in self.elves.iter().enumerate() {
            self.entries.insert(f.path.clone(), Entry::Elf(i));
        }
        self.by_name.clear();
        for path in self.entries.keys() {
            let name = path.rsplit('/').next().unwrap_or(path);
            self.by_name
                .entry(name.to_owned())
                .or_default()
                .push(path.clone());
        }
    }

    /// The number of files and links in the tree.
    pub fn file_count(&self) -> usize {
        self.entries.len()
    }

    /// Resolves `path` (relative to the root) to the real path of a file in
    /// the tree, following symlinks and hard links, never leaving the tree.
    pub fn lookup(&self, path: &str) -> Option<String> {
        let mut pending: Vec<String> = path.split('/').rev().map(str::to_owned).collect();
        let mut resolved: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(component) = pending.pop() {
            match component.as_str() {
                "" | "." => continue,
                // Escaping the root leaves the bundle.
                ".." => {
                    resolved.pop()?;
                    continue;
                }
                _ => resolved.push(component),
            }
            let here = resolved.join("/");
            let target = match self.entries.get(&here) {
                Some(Entry::Symlink(t)) => {
                    // An absolute link points at the machine, not the bundle.
                    if t.starts_with('/') {
                        return None;
                    }
                    resolved.pop();
                    t.clone()
                }
                Some(Entry::HardLink(t)) => {
                    resolved.clear();
                    t.clone()
                }
                _ => continue,
            };
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                return None;
            }
            pending.extend(target.split('/').rev().map(str::to_owned));
        }
        let here = resolved.join("/");
        matches!(self.entries.get(&here), Some(Entry::File | Entry::Elf(_))).then_some(here)
    }

    /// The facts of the ELF file at a real path, if it is one.
    pub fn facts_at(&self, real_path: &str) -> Option<&ElfFacts> {
        match self.entries.get(real_path) {
            Some(Entry::Elf(i)) => self.elves.get(*i),
            _ => None,
        }
    }

    /// Where ld.so would find `needed` for `facts`, using only the
    /// `$ORIGIN` entries of its search path (the only ones that can point
    /// into a relocatable tree). The file's own directory is not implied.
    pub fn resolve_needed(&self, facts: &ElfFacts, needed: &str) -> Resolution {
        if !needed.contains('/') {
            let origin = parent_dir(&facts.path);
            for entry in facts.search_entries() {
                let Some(dir) = expand_origin(entry, origin) else {
                    continue;
                };
                if let Some(found) = self.lookup(&format!("{dir}/{needed}")) {
                    return Resolution::Found(found);
                }
            }
        }
        let base = needed.rsplit('/').next().unwrap_or(needed);
        let elsewhere = self.by_name.get(base).cloned().unwrap_or_default();
        Resolution::Missing { elsewhere }
    }
}

/// Reads the whole file when it carries the ELF magic, else its first bytes.
fn sniff(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    (&mut file).take(SNIFF_LEN).read_to_end(&mut bytes)?;
    if has_elf_magic(&bytes) {
        file.read_to_end(&mut bytes)?;
    }
    Ok(bytes)
}

/// Examines files in parallel, keeping their order (so the first error is
/// the same on every run).
/// Examines a big ELF entry of a tar stream from an unlinked temporary file
/// (`head` is what was already read of it), mapped read-only: memory stays
/// bounded whatever the entry's size. The outer error is the stream's (or
/// the temporary file's); the inner one the file's own.
fn examine_spilled(
    rel: &str,
    head: &[u8],
    rest: &mut impl Read,
    size: u64,
) -> std::io::Result<Result<Option<ElfFacts>, ElfError>> {
    use std::io::Write;
    let mut file = tempfile::tempfile()?;
    file.write_all(head)?;
    std::io::copy(
        &mut rest.take(size.saturating_sub(head.len() as u64)),
        &mut file,
    )?;
    file.flush()?;
    // SAFETY: the file was created unlinked by this process and its only
    // handle is `file`, which nothing writes to while the mapping lives; no
    // other process can open it, so the mapped bytes cannot change under
    // goblin's slice.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    Ok(examine(rel, &map))
}

fn examine_all(files: Vec<(String, Vec<u8>)>) -> Vec<Examined> {
    files
        .into_par_iter()
        .map(|(rel, bytes)| match examine(&rel, &bytes) {
            Ok(facts) => Ok((rel, facts)),
            Err(e) => Err((rel, e)),
        })
        .collect()
}

fn rel_string(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// A tar path made relative and `/`-separated, or `None` when it is absolute
/// or climbs with `..` (an archive must not say where outside itself to go).
fn safe_rel(raw: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(entries: &[(&str, Entry)]) -> Tree {
        Tree {
            entries: entries
                .iter()
                .map(|(p, e)| (p.to_string(), e.clone()))
                .collect(),
            ..Tree::default()
        }
    }

    #[test]
    fn shared_library_names() {
        for yes in [
            "libfoo.so",
            "a/libfoo.so.1",
            "libssl.so.1.1",
            "_ssl.cpython-311-x86_64-linux-gnu.so",
        ] {
            assert!(looks_like_shared_library(yes), "{yes}");
        }
        for no in [
            "libfoo.sox",
            "foo.so.bak",
            "libfoo.so.",
            "notes.txt",
            "lib.so.1a",
        ] {
            assert!(!looks_like_shared_library(no), "{no}");
        }
    }

    #[test]
    fn empty_so_and_text_so_are_errors_but_linker_scripts_are_not() {
        let err = examine("lib/libx.so", b"").unwrap_err().to_string();
        assert!(
            err.contains("lib/libx.so") && err.contains("empty"),
            "{err}"
        );
        assert!(examine("lib/libx.so.1", b"hello").is_err());
        assert!(
            examine("libc.so", b"/* GNU ld script */ GROUP ( libc.so.6 )")
                .unwrap()
                .is_none()
        );
        assert!(examine("README", b"").unwrap().is_none());
    }

    #[test]
    fn lookup_follows_links_inside_the_tree_only() {
        let t = tree(&[
            ("lib/libz.so.1.2.13", Entry::File),
            ("lib/libz.so.1", Entry::Symlink("libz.so.1.2.13".into())),
            ("lib64", Entry::Symlink("lib".into())),
            ("lib/abs.so.1", Entry::Symlink("/usr/lib/abs.so.1".into())),
            ("lib/loop.so", Entry::Symlink("loop.so".into())),
            ("hard.so", Entry::HardLink("lib/libz.so.1.2.13".into())),
        ]);
        assert_eq!(
            t.lookup("lib/libz.so.1").as_deref(),
            Some("lib/libz.so.1.2.13")
        );
        assert_eq!(
            t.lookup("bin/../lib64/libz.so.1").as_deref(),
            Some("lib/libz.so.1.2.13")
        );
        assert_eq!(t.lookup("hard.so").as_deref(), Some("lib/libz.so.1.2.13"));
        assert_eq!(t.lookup("lib/abs.so.1"), None);
        assert_eq!(t.lookup("lib/loop.so"), None);
        assert_eq!(t.lookup("../lib/libz.so.1"), None);
        assert_eq!(t.lookup("lib"), None);
    }

    #[test]
    fn unsafe_archive_paths() {
        assert_eq!(safe_rel(Path::new("./a/b")).as_deref(), Some("a/b"));
        assert_eq!(safe_rel(Path::new("/etc/passwd")), None);
        assert_eq!(safe_rel(Path::new("a/../../x")), None);
    }
}

//! Making an assembled bundle relocatable: after this, no file refers to the
//! paths it was built at.
//!
//! Build paths are the bundle's assembly directory in the builder (e.g.
//! `/hermetic/out/app`), the other work directories there, and the builder
//! CPython's install prefix (e.g. `/opt/python/cp311-cp311`), which the
//! runtime was copied from. The rewrites, each for its own kind of file:
//!
//! - console scripts: the absolute shebang becomes a `/bin/sh` trampoline
//!   that runs the interpreter beside the script;
//! - `_sysconfigdata_*.py` and `python3.X-config`: the prefix becomes a
//!   placeholder, which `_sysconfigdata` replaces with `sys.base_prefix` when
//!   imported, so `sysconfig` answers with wherever the bundle is;
//! - pkg-config files: `prefix=${pcfiledir}/<relative>`;
//! - `direct_url.json` (PEP 610, records the build directory of local
//!   projects): removed;
//! - `RECORD`: hashes and sizes of rewritten files are updated.
//!
//! [`scan`] then reads every file for the build paths; the build fails on a
//! hit outside the one documented exception (the compiled-in default prefix
//! in the interpreter's ELF files, which getpath only uses when the runtime's
//! landmarks are missing).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::launcher::relocatable_shebang;

/// Bytes [`scan`] reads of a file at a time: its memory is this plus the
/// longest needle, whatever the size of the files.
const SCAN_CHUNK: usize = 1 << 20;

/// Placeholder for the runtime prefix in sysconfig data.
pub const PREFIX_PLACEHOLDER: &str = "@@HERMETIC_RUNTIME_PREFIX@@";

/// The paths a bundle must not mention.
#[derive(Debug, Clone)]
pub struct BuildPaths {
    /// The bundle's assembly directory in the builder, e.g. `/hermetic/out/app`.
    pub bundle_dir: String,
    /// The builder CPython's prefixes the runtime was copied from: the one
    /// its interpreter was found at and, when that is a symlink (manylinux's
    /// `/opt/python/cp311-cp311`), the real one it was installed under.
    pub python_prefixes: Vec<String>,
    /// Other directories used during the build (`/hermetic/src`, …).
    pub work_dirs: Vec<String>,
}

impl BuildPaths {
    /// Every needle, longest first (so the bundle dir wins over its parent).
    pub fn needles(&self) -> Vec<&str> {
        let mut v: Vec<&str> = std::iter::once(self.bundle_dir.as_str())
            .chain(self.python_prefixes.iter().map(String::as_str))
            .chain(self.work_dirs.iter().map(String::as_str))
            .collect();
        v.sort_by_key(|s| std::cmp::Reverse(s.len()));
        v.dedup();
        v
    }

    /// Every prefix and the runtime's assembly path, each mapped to `to`.
    fn prefix_pairs<'a>(&'a self, runtime_build: &'a str, to: &'a str) -> Vec<(&'a str, &'a str)> {
        self.python_prefixes
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(runtime_build))
            .map(|p| (p, to))
            .collect()
    }

    fn mentions_prefix(&self, data: &[u8]) -> bool {
        self.python_prefixes
            .iter()
            .any(|p| contains(data, p.as_bytes()))
    }
}

/// What [`relocate`] changed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RelocateReport {
    /// Scripts whose shebang now finds the bundle's Python.
    pub scripts: Vec<String>,
    /// `*-config` scripts and sysconfig data whose build prefix became the placeholder.
    pub sysconfig: Vec<String>,
    /// pkg-config files rewritten to a relative prefix.
    pub pkgconfig: Vec<String>,
    /// Files removed (`direct_url.json`, which names a build path).
    pub removed: Vec<String>,
    /// Other text files whose prefix became the placeholder.
    pub other: Vec<String>,
    /// `RECORD` files whose entries were updated for the files changed or removed.
    pub records_updated: Vec<String>,
}

/// A build path found in a bundle file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Hit {
    /// The file, relative to the bundle top.
    pub path: String,
    /// The build path found in it.
    pub needle: String,
    /// Whether the file is an ELF object.
    pub elf: bool,
}

/// Errors making a bundle relocatable.
#[derive(Debug, thiserror::Error)]
pub enum RelocateError {
    /// Reading or writing a bundle file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A file still names a build path.
    #[error("{} still refers to build path {needle}", path.display())]
    Leftover {
        /// The file.
        path: PathBuf,
        /// The build path it names.
        needle: String,
    },
}

/// Rewrites the files of the bundle rooted at `top` (the `<name>/` dir).
pub fn relocate(
    top: &Path,
    paths: &BuildPaths,
    python_exe: &str,
) -> Result<RelocateReport, RelocateError> {
    let mut report = RelocateReport::default();
    let runtime = top.join(super::RUNTIME_DIR);
    let runtime_build = format!("{}/{}", paths.bundle_dir, super::RUNTIME_DIR);
    // Rewritten files, by absolute path, to fix their RECORD entries.
    let mut rewritten: BTreeMap<PathBuf, Vec<u8>> = BTreeMap::new();

    // Console scripts and the -config script.
    let bin = runtime.join("bin");
    if bin.is_dir() {
        for entry in sorted_dir(&bin)? {
            let meta = fs_err::symlink_metadata(&entry)?;
            if !meta.is_file() {
                continue;
            }
            let data = fs_err::read(&entry)?;
            let name = entry
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if let Some(new) = rewrite_shebang(&data, &paths.needles(), python_exe) {
                fs_err::write(&entry, &new)?;
                rewritten.insert(entry.clone(), new);
                report.scripts.push(rel(top, &entry));
            } else if name.ends_with("-config") && paths.mentions_prefix(&data) {
                let new = replace_all(
                    &data,
                    &paths.prefix_pairs(&runtime_build, PREFIX_PLACEHOLDER),
                );
                fs_err::write(&entry, &new)?;
                report.sysconfig.push(rel(top, &entry));
            }
        }
    }

    for entry in walk_files(&runtime)? {
        let name = entry
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.starts_with("_sysconfigdata") && name.ends_with(".py") {
            let data = fs_err::read(&entry)?;
            let mut new = replace_all(
                &data,
                &paths.prefix_pairs(&runtime_build, PREFIX_PLACEHOLDER),
            );
            if new != data {
                new.extend_from_slice(SYSCONFIG_FIXUP.as_bytes());
                fs_err::write(&entry, &new)?;
                report.sysconfig.push(rel(top, &entry));
            }
        } else if name.ends_with(".pc") {
            let data = fs_err::read(&entry)?;
            let prefixes: Vec<&str> = paths
                .prefix_pairs(&runtime_build, "")
                .into_iter()
                .map(|(p, _)| p)
                .collect();
            if let Some(new) = rewrite_pkgconfig(&data, &entry, &runtime, &prefixes) {
                fs_err::write(&entry, &new)?;
                report.pkgconfig.push(rel(top, &entry));
            }
        } else if name == "direct_url.json"
            && entry
                .parent()
                .is_some_and(|p| p.to_string_lossy().ends_with(".dist-info"))
        {
            fs_err::remove_file(&entry)?;
            report.removed.push(rel(top, &entry));
        } else if !report.scripts.contains(&rel(top, &entry)) {
            // Any other text file naming the prefix (the config dir's
            // Makefile and python-config.py, …): build-time data only, so
            // the placeholder is enough to keep the bundle path-free.
            let data = fs_err::read(&entry)?;
            let pairs = paths.prefix_pairs(&runtime_build, PREFIX_PLACEHOLDER);
            if !data.starts_with(b"\x7fELF")
                && std::str::from_utf8(&data).is_ok()
                && pairs.iter().any(|(n, _)| contains(&data, n.as_bytes()))
            {
                let new = replace_all(&data, &pairs);
                fs_err::write(&entry, &new)?;
                rewritten.insert(entry.clone(), new);
                report.other.push(rel(top, &entry));
            }
        }
    }

    // RECORD files list every installed file with its hash: keep them true.
    for entry in walk_files(&runtime)? {
        let is_record = entry.file_name().is_some_and(|n| n == "RECORD")
            && entry
                .parent()
                .is_some_and(|p| p.to_string_lossy().ends_with(".dist-info"));
        if !is_record {
            continue;
        }
        let site = entry
            .parent()
            .and_then(Path::parent)
            .unwrap_or(top)
            .to_path_buf();
        let text = fs_err::read_to_string(&entry)?;
        let mut changed = false;
        let mut out = String::with_capacity(text.len());
        for line in text.lines() {
            let path_part = line.split(',').next().unwrap_or_default();
            let target = normalize(&site.join(path_part));
            if let Some(data) = rewritten.get(&target) {
                out.push_str(&format!(
                    "{path_part},sha256={},{}\n",
                    record_hash(data),
                    data.len()
                ));
                changed = true;
            } else if path_part.ends_with("direct_url.json") && !target.exists() {
                changed = true;
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        if changed {
            fs_err::write(&entry, out)?;
            report.records_updated.push(rel(top, &entry));
        }
    }
    Ok(report)
}

/// Appended to `_sysconfigdata_*.py`: puts the real prefix back at import.
const SYSCONFIG_FIXUP: &str = r#"
# hermetic: the build prefix was replaced by a placeholder so that the bundle
# can live anywhere; put the runtime's actual prefix back.
def _hermetic_relocate():
    import sys
    for _k, _v in list(build_time_vars.items()):
        if isinstance(_v, str) and "@@HERMETIC_RUNTIME_PREFIX@@" in _v:
            build_time_vars[_k] = _v.replace("@@HERMETIC_RUNTIME_PREFIX@@", sys.base_prefix)
_hermetic_relocate()
del _hermetic_relocate
"#;

/// A script whose shebang names a build path gets the sh trampoline.
fn rewrite_shebang(data: &[u8], needles: &[&str], python_exe: &str) -> Option<Vec<u8>> {
    if !data.starts_with(b"#!") {
        return None;
    }
    let end = data.iter().position(|&b| b == b'\n')?;
    let line = String::from_utf8_lossy(&data[..end]);
    if !needles.iter().any(|n| line.contains(n)) || !line.contains("python") {
        return None;
    }
    let mut out = relocatable_shebang(python_exe).into_bytes();
    out.extend_from_slice(&data[end + 1..]);
    Some(out)
}

fn rewrite_pkgconfig(
    data: &[u8],
    file: &Path,
    runtime: &Path,
    prefixes: &[&str],
) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(data);
    if !prefixes.iter().any(|p| text.contains(p)) {
        return None;
    }
    let dir = file.parent()?;
    let depth = dir.strip_prefix(runtime).ok()?.components().count();
    let relative = if depth == 0 {
        "${pcfiledir}".to_string()
    } else {
        format!("${{pcfiledir}}/{}", vec![".."; depth].join("/"))
    };
    let mut out = text.into_owned();
    for p in prefixes {
        out = out.replace(p, &relative);
    }
    Some(out.into_bytes())
}

/// Scans every file under `top` for the build paths, streaming each file in
/// [`SCAN_CHUNK`]-byte chunks (a 4 GiB file costs no more than a small one).
pub fn scan(top: &Path, paths: &BuildPaths) -> Result<Vec<Hit>, RelocateError> {
    let needles = paths.needles();
    let mut hits = Vec::new();
    for entry in walk_files(top)? {
        let file = fs_err::File::open(&entry)?;
        // fs_err names the file in open and read errors alike.
        let found = find_needles(file, &needles, SCAN_CHUNK)?;
        if let Some(index) = found.needle {
            hits.push(Hit {
                path: rel(top, &entry),
                needle: needles[index].to_string(),
                elf: found.elf,
            });
        }
    }
    Ok(hits)
}

/// What [`find_needles`] found in one stream.
#[derive(Debug, PartialEq, Eq)]
struct Found {
    /// The index of the first needle (in the given order) the stream contains.
    needle: Option<usize>,
    /// Whether the stream starts with the ELF magic.
    elf: bool,
}

/// Reads `reader` through in `chunk`-byte pieces, keeping the last
/// `longest needle - 1` bytes of each piece in front of the next so that a
/// needle across a boundary is found. Stops early once the first needle is
/// found, since no other can win over it.
fn find_needles(mut reader: impl Read, needles: &[&str], chunk: usize) -> std::io::Result<Found> {
    let overlap = needles
        .iter()
        .map(|n| n.len())
        .max()
        .unwrap_or(0)
        .saturating_sub(1);
    let mut buf = vec![0u8; overlap + chunk.max(1)];
    let mut head = Vec::with_capacity(4);
    let mut kept = 0;
    let mut best: Option<usize> = None;
    loop {
        crate::cancel::check()?;
        let n = match reader.read(&mut buf[kept..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if head.len() < 4 {
            let want = (4 - head.len()).min(n);
            head.extend_from_slice(&buf[kept..kept + want]);
        }
        let filled = kept + n;
        let window = &buf[..filled];
        let candidates = best.unwrap_or(needles.len());
        best = needles[..candidates]
            .iter()
            .position(|needle| contains(window, needle.as_bytes()))
            .or(best);
        if best == Some(0) {
            break;
        }
        // Keep the tail that could start a needle ending in the next piece.
        kept = overlap.min(filled);
        buf.copy_within(filled - kept..filled, 0);
    }
    Ok(Found {
        needle: best,
        elf: head == b"\x7fELF",
    })
}

/// The hits that are errors: anything but the interpreter's compiled-in
/// default prefix inside ELF files.
pub fn forbidden_hits<'a>(hits: &'a [Hit], paths: &BuildPaths) -> Vec<&'a Hit> {
    hits.iter()
        .filter(|h| !(h.elf && paths.python_prefixes.contains(&h.needle)))
        .collect()
}

fn record_hash(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(data))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn replace_all(data: &[u8], pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut text = String::from_utf8_lossy(data).into_owned();
    // Longest first so a path never gets half-replaced by its parent.
    let mut pairs = pairs.to_vec();
    pairs.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
    for (from, to) in pairs {
        text = text.replace(from, to);
    }
    text.into_bytes()
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn rel(top: &Path, path: &Path) -> String {
    path.strip_prefix(top)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

fn sorted_dir(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = fs_err::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    v.sort();
    Ok(v)
}

/// Regular files under `dir` (not following symlinks), sorted.
pub(crate) fn walk_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        crate::cancel::check()?;
        let entry = entry.map_err(std::io::Error::other)?;
        if entry.file_type().is_file() {
            out.push(entry.into_path());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that records the largest buffer it was asked to fill.
    struct Probe<R> {
        inner: R,
        largest: usize,
    }

    impl<R: Read> Read for Probe<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.largest = self.largest.max(buf.len());
            self.inner.read(buf)
        }
    }

    #[test]
    fn a_needle_across_a_chunk_boundary_is_found() {
        let needles = ["/hermetic/out/app", "/hermetic"];
        let data = b"0123456/hermetic/out/app/python";
        // Every chunk size puts the boundary somewhere else in the needle,
        // including one byte at a time.
        for chunk in 1..data.len() + 2 {
            let found = find_needles(&data[..], &needles, chunk).unwrap();
            assert_eq!(found.needle, Some(0), "chunk {chunk}");
            assert!(!found.elf);
        }
        // The shorter needle alone, split across chunks too.
        let found = find_needles(&b"xx/hermetic/srcyy"[..], &needles, 3).unwrap();
        assert_eq!(found.needle, Some(1));
        let found = find_needles(&b"\x7fELF/hermetix"[..], &needles, 2).unwrap();
        assert_eq!(
            found,
            Found {
                needle: None,
                elf: true
            }
        );
    }

    #[test]
    fn a_big_stream_is_scanned_through_a_fixed_buffer() {
        // 64 MiB of zeros (what a sparse file reads as), a needle at the end.
        let zeros = std::io::repeat(0).take(64 << 20);
        let inner = (&b"\x7fELF"[..]).chain(zeros).chain(&b"/hermetic/src"[..]);
        let mut probe = Probe { inner, largest: 0 };
        let needles = ["/hermetic/out/app", "/hermetic/src"];
        let found = find_needles(&mut probe, &needles, 4096).unwrap();
        assert_eq!(
            found,
            Found {
                needle: Some(1),
                elf: true
            }
        );
        assert!(
            probe.largest <= 4096 + 16,
            "asked for {} bytes",
            probe.largest
        );
    }

    fn paths() -> BuildPaths {
        BuildPaths {
            bundle_dir: "/hermetic/out/app".into(),
            python_prefixes: vec!["/opt/python/cp311-cp311".into()],
            work_dirs: vec!["/hermetic/src".into(), "/hermetic/inputs".into()],
        }
    }

    #[test]
    fn rewrites_every_kind_and_leaves_no_build_path() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("app");
        let rt = top.join("python/runtime");
        let site = rt.join("lib/python3.11/site-packages");
        fs_err::create_dir_all(rt.join("bin")).unwrap();
        fs_err::create_dir_all(site.join("tool-1.0.dist-info")).unwrap();
        fs_err::create_dir_all(rt.join("lib/pkgconfig")).unwrap();
        let script = "#!/hermetic/out/app/python/runtime/bin/python3.11\nimport sys\nfrom tool import main\nsys.exit(main())\n";
        fs_err::write(rt.join("bin/tool"), script).unwrap();
        fs_err::write(
            rt.join("lib/python3.11/_sysconfigdata__linux_x86_64-linux-gnu.py"),
            "build_time_vars = {'prefix': '/opt/python/cp311-cp311', 'LIBDIR': '/opt/python/cp311-cp311/lib', 'n': 1}\n",
        )
        .unwrap();
        fs_err::write(
            rt.join("lib/pkgconfig/python-3.11.pc"),
            "prefix=/opt/python/cp311-cp311\nlibdir=${prefix}/lib\n",
        )
        .unwrap();
        fs_err::write(
            site.join("tool-1.0.dist-info/direct_url.json"),
            "{\"url\": \"file:///hermetic/src/tool\"}",
        )
        .unwrap();
        fs_err::write(
            site.join("tool-1.0.dist-info/RECORD"),
            "../../../bin/tool,sha256=xxx,99\ntool-1.0.dist-info/direct_url.json,sha256=yyy,10\ntool/__init__.py,sha256=zzz,5\n",
        )
        .unwrap();

        let report = relocate(&top, &paths(), "python3.11").unwrap();
        assert_eq!(report.scripts, vec!["python/runtime/bin/tool"]);
        assert_eq!(report.removed.len(), 1);
        let hits = scan(&top, &paths()).unwrap();
        assert!(hits.is_empty(), "{hits:?}");

        let new_script = fs_err::read(rt.join("bin/tool")).unwrap();
        assert!(new_script.starts_with(b"#!/bin/sh\n'''exec'"));
        let record = fs_err::read_to_string(site.join("tool-1.0.dist-info/RECORD")).unwrap();
        assert!(
            record.contains(&format!(
                "../../../bin/tool,sha256={},{}",
                record_hash(&new_script),
                new_script.len()
            )),
            "{record}"
        );
        assert!(!record.contains("direct_url.json"));
        assert!(record.contains("tool/__init__.py,sha256=zzz,5"));
        let pc = fs_err::read_to_string(rt.join("lib/pkgconfig/python-3.11.pc")).unwrap();
        assert!(pc.starts_with("prefix=${pcfiledir}/../..\n"), "{pc}");
    }

    #[test]
    fn sysconfig_fixup_restores_the_real_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("app");
        let lib = top.join("python/runtime/lib/python3.11");
        fs_err::create_dir_all(&lib).unwrap();
        let file = lib.join("_sysconfigdata__linux_x86_64-linux-gnu.py");
        fs_err::write(
            &file,
            "build_time_vars = {'LIBDIR': '/opt/python/cp311-cp311/lib'}\n",
        )
        .unwrap();
        relocate(&top, &paths(), "python3.11").unwrap();
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(format!("import runpy,sys; sys.base_prefix='/somewhere'; g=runpy.run_path('{}'); print(g['build_time_vars']['LIBDIR'])", file.display()))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "/somewhere/lib",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn scan_finds_paths_in_binaries_and_text() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("a.txt"), "see /hermetic/src/x").unwrap();
        fs_err::write(
            dir.path().join("b.so"),
            b"\x7fELF\0\0/opt/python/cp311-cp311\0",
        )
        .unwrap();
        let hits = scan(dir.path(), &paths()).unwrap();
        assert_eq!(hits.len(), 2);
        let forbidden = forbidden_hits(&hits, &paths());
        assert_eq!(forbidden.len(), 1);
        assert_eq!(forbidden[0].path, "a.txt");
    }
}

//! Checked-hash bytecode (PEP 552), for recipes that ask for it with
//! `[install] bytecode = "checked-hash"`.
//!
//! Runs after the tree on the host is final (relocated, launchers written,
//! pruned), so no `.pyc` can go stale: only the tree's `.py` files are
//! copied into a fresh offline builder container, where the builder's own
//! CPython (the one the runtime was copied from: same magic number, same
//! compiler) compiles each with `py_compile`, `PYTHONHASHSEED=0` and the
//! bundle-relative path as the recorded file name. A checked-hash `.pyc`
//! holds the source's hash rather than its mtime, so it is the same bytes
//! wherever and whenever it is made (the reproducibility tests prove it) and
//! the interpreter checks it against the source at import. The `.pyc` files
//! come back as a tar stream that is treated as hostile: only
//! `__pycache__/<stem>.<tag>.pyc` files beside an existing `<stem>.py` are
//! taken into the tree.

use std::path::{Path, PathBuf};

use tracing::{info, instrument};

use super::{BuildContext, BuildError, step_failed};
use crate::archive;
use crate::bundle::relocate::walk_files;
use crate::engine::ExecSpec;

/// Where the sources go in the container, and where the `.pyc` files are
/// written (a directory the unprivileged build user owns).
const SRC: &str = "/tmp/hermetic-bytecode/src";
const OUT: &str = "/tmp/hermetic-bytecode/pyc";

/// Compiles every `.py` file in the sources, in sorted order, writing each
/// `.pyc` where the interpreter looks for it (relative to the top), and
/// prints how many compiled and which were skipped (files that are not
/// valid Python 3, such as templates: they get no `.pyc`).
const COMPILE_SCRIPT: &str = r#"
import importlib.util, os, py_compile, sys
src, out = sys.argv[1], sys.argv[2]
compiled, skipped = 0, []
for root, dirs, files in os.walk(src):
    dirs.sort()
    for name in sorted(files):
        if not name.endswith(".py"):
            continue
        rel = os.path.relpath(os.path.join(root, name), src)
        try:
            py_compile.compile(
                os.path.join(src, rel),
                cfile=os.path.join(out, importlib.util.cache_from_source(rel)),
                dfile=rel,
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
            )
            compiled += 1
        except py_compile.PyCompileError:
            skipped.append(rel)
print(compiled, len(skipped))
for rel in skipped:
    print(rel)
"#;

/// What the step did.
#[derive(Debug, Clone, Default)]
pub struct BytecodeSummary {
    /// How many `.pyc` files were written.
    pub compiled: usize,
    /// Bundle-relative `.py` files that are not valid Python 3.
    pub skipped: Vec<String>,
}

/// Adds a checked-hash `.pyc` beside every compilable `.py` file in `top`.
#[instrument(skip_all)]
pub async fn compile(
    ctx: &BuildContext<'_>,
    image_id: &str,
    python: &str,
    top: &Path,
) -> Result<BytecodeSummary, BuildError> {
    // Only the sources go in: a tree of the `.py` files, same layout.
    let staging = tempfile::tempdir()?;
    let sources = staging.path().join("src");
    for file in walk_files(top)? {
        if file.extension().is_some_and(|e| e == "py") {
            let rel = file.strip_prefix(top).unwrap_or(&file);
            let dest = sources.join(rel);
            fs_err::create_dir_all(dest.parent().unwrap_or(&sources))?;
            fs_err::copy(&file, &dest)?;
        }
    }
    fs_err::create_dir_all(&sources)?;

    let container = super::assemble::create(ctx, image_id).await?;
    let result = async {
        container.copy_dir_in(&sources, SRC).await?;
        container.mkdir(OUT).await?;
        container
            .put_file(
                "/tmp/hermetic-bytecode",
                "compile.py",
                COMPILE_SCRIPT.as_bytes(),
                0o644,
            )
            .await?;
        let cmd = format!(
            // -s -S rather than -I: isolated mode would ignore PYTHONHASHSEED.
            "PYTHONHASHSEED=0 {} -s -S /tmp/hermetic-bytecode/compile.py {SRC} {OUT}",
            crate::shell::quote(python)
        );
        let out = container.exec(&ExecSpec::shell(cmd)).await?;
        if out.exit_code != 0 {
            return Err(step_failed("compile bytecode", &out, container.log_path()));
        }
        let tar = staging.path().join("pyc.tar");
        container.copy_out(OUT, &tar).await?;
        Ok::<_, BuildError>((out.stdout, tar))
    }
    .await;
    container.remove().await;
    let (stdout, tar) = result?;

    let mut lines = stdout.lines();
    let counts: Vec<usize> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let summary = BytecodeSummary {
        compiled: counts.first().copied().unwrap_or(0),
        skipped: lines.map(str::to_string).collect(),
    };

    let unpacked = staging.path().join("out");
    fs_err::create_dir_all(&unpacked)?;
    archive::unpack_safe(
        fs_err::File::open(&tar)?,
        &unpacked,
        archive::unpack_limit()?,
    )?;
    let root = unpacked.join("pyc");
    let mut taken = 0;
    for file in walk_files(&root)? {
        let rel = file.strip_prefix(&root).unwrap_or(&file).to_path_buf();
        let dest = top.join(&rel);
        if !is_pyc_of_a_source(top, &rel) {
            return Err(BuildError::Io(std::io::Error::other(format!(
                "the bytecode step returned {}, which is not the .pyc of a source in the bundle",
                rel.display()
            ))));
        }
        fs_err::create_dir_all(dest.parent().unwrap_or(top))?;
        fs_err::rename(&file, &dest)?;
        taken += 1;
    }
    if taken != summary.compiled {
        return Err(BuildError::Io(std::io::Error::other(format!(
            "the bytecode step compiled {} file(s) but returned {taken}",
            summary.compiled
        ))));
    }
    info!(
        compiled = summary.compiled,
        skipped = summary.skipped.len(),
        "checked-hash bytecode"
    );
    Ok(summary)
}

/// `a/__pycache__/b.cpython-311.pyc` (or `.opt-1.pyc`) with `a/b.py` in `top`.
fn is_pyc_of_a_source(top: &Path, rel: &Path) -> bool {
    let (Some(name), Some(cache_dir)) = (rel.file_name().and_then(|n| n.to_str()), rel.parent())
    else {
        return false;
    };
    if cache_dir.file_name().is_none_or(|d| d != "__pycache__") || !name.ends_with(".pyc") {
        return false;
    }
    let Some(stem) = name.split('.').next().filter(|s| !s.is_empty()) else {
        return false;
    };
    let source: PathBuf = cache_dir
        .parent()
        .unwrap_or(Path::new(""))
        .join(format!("{stem}.py"));
    fs_err::symlink_metadata(top.join(source)).is_ok_and(|m| m.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pycs_beside_their_sources_are_taken() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path();
        fs_err::create_dir_all(top.join("pkg")).unwrap();
        fs_err::write(top.join("pkg/mod.py"), "x = 1\n").unwrap();
        let ok = |p: &str| is_pyc_of_a_source(top, Path::new(p));
        assert!(ok("pkg/__pycache__/mod.cpython-311.pyc"));
        assert!(ok("pkg/__pycache__/mod.cpython-311.opt-1.pyc"));
        assert!(!ok("pkg/__pycache__/other.cpython-311.pyc"), "no source");
        assert!(!ok("pkg/mod.cpython-311.pyc"), "not in __pycache__");
        assert!(!ok("pkg/__pycache__/mod.py"), "not a .pyc");
        assert!(!ok("bin/__pycache__/evil.pyc"));
    }
}

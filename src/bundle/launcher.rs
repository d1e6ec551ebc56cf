//! Launcher scripts: POSIX sh at the bundle's top, one per entry point.
//!
//! A launcher finds its own directory through any chain of symlinks (so a
//! link from `/usr/local/bin` works), clears the caller's Python environment
//! (`PYTHONPATH`, `PYTHONHOME`, …) so a system Python setup cannot leak in,
//! points `PYTHONHOME` at the bundle's runtime, and `exec`s the interpreter
//! so that SIGINT/SIGTERM reach the program itself, not a shell.

use super::RUNTIME_DIR;

/// The launcher for console script `name` (installed in the runtime's `bin/`).
pub fn launcher_script(name: &str, python: &str) -> String {
    format!(
        r#"#!/bin/sh
# hermetic launcher for `{name}`: runs the bundle's own Python from wherever
# the bundle is. Generated; do not edit.
self=$0
# Follow symlinks to this script so that a link elsewhere still finds the bundle.
while [ -h "$self" ]; do
    link=$(readlink -- "$self")
    case $link in
        /*) self=$link ;;
        *) self=$(dirname -- "$self")/$link ;;
    esac
done
here=$(cd -P -- "$(dirname -- "$self")" && pwd -P) || exit 127
# Nothing from the caller's Python setup may leak into the bundle's runtime.
unset PYTHONPATH PYTHONSTARTUP PYTHONEXECUTABLE PYTHONUSERBASE PYTHONSAFEPATH VIRTUAL_ENV
PYTHONHOME="$here/{RUNTIME_DIR}"
PYTHONNOUSERSITE=1
PYTHONDONTWRITEBYTECODE=1
export PYTHONHOME PYTHONNOUSERSITE PYTHONDONTWRITEBYTECODE
exec "$here/{RUNTIME_DIR}/bin/{python}" -s "$here/{RUNTIME_DIR}/bin/{name}" "$@"
"#
    )
}

/// The first lines of a relocatable console script: a shell trampoline that
/// runs the interpreter next to the script, followed by the Python body.
/// Python sees the first two lines as a harmless string literal.
pub fn relocatable_shebang(python: &str) -> String {
    format!(
        "#!/bin/sh\n'''exec' \"$(dirname -- \"$(readlink -f -- \"$0\")\")/{python}\" \"$0\" \"$@\"\n' '''\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launcher_execs_and_isolates() {
        let s = launcher_script("http", "python3.11");
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains("unset PYTHONPATH"));
        assert!(s.contains("PYTHONNOUSERSITE=1"));
        assert!(s.contains("exec \"$here/python/runtime/bin/python3.11\" -s \"$here/python/runtime/bin/http\" \"$@\""));
    }

    #[test]
    fn launcher_runs_under_sh_through_a_symlink() {
        // A fake runtime whose "python" prints its arguments and environment.
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("app");
        let bin = top.join("python/runtime/bin");
        fs_err::create_dir_all(&bin).unwrap();
        let fake = "#!/bin/sh\necho \"py=$0 args=$* home=$PYTHONHOME path=${PYTHONPATH-unset} nus=$PYTHONNOUSERSITE\"\n";
        fs_err::write(bin.join("python3.11"), fake).unwrap();
        fs_err::write(top.join("tool"), launcher_script("tool", "python3.11")).unwrap();
        for f in [bin.join("python3.11"), top.join("tool")] {
            use std::os::unix::fs::PermissionsExt;
            fs_err::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let links = dir.path().join("links");
        fs_err::create_dir_all(&links).unwrap();
        std::os::unix::fs::symlink(top.join("tool"), links.join("tool")).unwrap();
        let out = std::process::Command::new("sh")
            .arg(links.join("tool"))
            .args(["a b", "c"])
            .env("PYTHONPATH", "/evil")
            .env("PYTHONHOME", "/evil")
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let real = fs_err::canonicalize(&top).unwrap();
        assert!(
            text.contains(&format!("home={}/python/runtime", real.display())),
            "{text}"
        );
        assert!(text.contains("path=unset"), "{text}");
        assert!(text.contains("nus=1"), "{text}");
        assert!(text.contains("args=-s"), "{text}");
        assert!(text.contains("a b c"), "{text}");
    }
}

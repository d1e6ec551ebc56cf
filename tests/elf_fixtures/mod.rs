//! Fixture ELF files compiled at test time with the host `cc` (no checked-in
//! blobs). Shared by the `elf_*` integration tests.

#![allow(dead_code)]
// Tests fail by panicking: unwrap, expect and panic! are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Compiles C `source` with `cc`, writing `out`; panics with cc's stderr on failure.
pub fn cc(dir: &Path, source: &str, out: &str, args: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let src = dir.join(format!("{}.c", out.replace('/', "_")));
    std::fs::write(&src, source).unwrap();
    let out_path = dir.join(out);
    std::fs::create_dir_all(out_path.parent().unwrap()).unwrap();
    let output = Command::new("cc")
        .arg(&src)
        .arg("-o")
        .arg(&out_path)
        .args(args)
        .output()
        .expect("run cc");
    assert!(
        output.status.success(),
        "cc {out} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::remove_file(&src).unwrap();
    out_path
}

/// A program: on this host (glibc >= 2.34) it needs `__libc_start_main@GLIBC_2.34`.
pub const MAIN: &str = "int main(void) { return 0; }\n";

/// A shared library whose only versioned need is `memcpy@GLIBC_2.14`.
pub const MEMCPY_LIB: &str = "#include <string.h>\n\
    void copy(char *d, const char *s, unsigned long n) { memcpy(d, s, n); }\n";

/// A small shared library to link against (not in any policy).
pub const FIX_LIB: &str = "int fix_answer(void) { return 42; }\n";

/// A program using `fix_answer` from `libfix.so.1`; exits 0 when it got 42.
pub const FIX_MAIN: &str = "int fix_answer(void);\n\
    int main(void) { return fix_answer() == 42 ? 0 : 3; }\n";

/// Builds `libfix.so.1` (SONAME `libfix.so.1`) into `dir/out`.
pub fn libfix(dir: &Path, out: &str) -> PathBuf {
    cc(
        dir,
        FIX_LIB,
        out,
        &["-shared", "-fPIC", "-Wl,-soname,libfix.so.1"],
    )
}

/// Builds a program linked against `libfix` found in `lib_dir`, with extra link args.
pub fn fix_main(dir: &Path, out: &str, lib_dir: &Path, extra: &[&str]) -> PathBuf {
    let lib_arg = format!("-L{}", lib_dir.display());
    let mut args = vec![lib_arg.as_str(), "-lfix"];
    args.extend_from_slice(extra);
    cc(dir, FIX_MAIN, out, &args)
}

//! Issue 14, "Interrupts and failures" and "Messages", against the real
//! `hermetic` binary and without an engine: a closed stdout or stderr ends
//! the run cleanly (exit 141, no panic, no "error: Broken pipe"), and
//! nothing from an archive reaches the terminal unescaped. Every hostile
//! input is made here.

// Tests fail by panicking: unwrap, expect and panic! are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A real ELF shared library (from the SBOM fixtures).
const ELF: &[u8] = include_bytes!("fixtures/sbom/elf/libfoo-5e6f7a8b.so.1");

/// Which of the child's streams to hand a pipe whose reader is already gone.
#[derive(Clone, Copy)]
enum Closed {
    Stdout,
    Stderr,
}

/// Runs hermetic with one stream a pipe nobody reads any more: every write
/// to it fails with EPIPE, as under `hermetic … | head -0`.
fn run_closed(args: &[&std::ffi::OsStr], closed: Closed) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = Command::new(common::hermetic_bin());
    cmd.args(args)
        .env("HERMETIC_HOME", tempfile::tempdir().unwrap().keep());
    match closed {
        Closed::Stdout => cmd.stdout(writer).stderr(Stdio::piped()),
        Closed::Stderr => cmd.stderr(writer).stdout(Stdio::piped()),
    };
    cmd.output().unwrap()
}

/// A tree whose audit prints a lot: many corrupt ELF files (each a
/// finding) beside one good library.
fn noisy_tree(root: &Path) {
    fs_err::create_dir_all(root.join("lib")).unwrap();
    fs_err::write(root.join("lib/libgood.so.1"), ELF).unwrap();
    for i in 0..2000 {
        let mut junk = b"\x7fELF".to_vec();
        junk.resize(64, 0);
        fs_err::write(root.join(format!("lib/libjunk{i}.so")), junk).unwrap();
    }
}

fn assert_clean_end(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr = short(stderr.as_bytes());
    assert!(!stderr.contains("panicked"), "{what} panicked: {stderr}");
    assert!(
        !stderr.contains("Broken pipe"),
        "{what} reported the pipe: {stderr}"
    );
    assert_eq!(
        out.status.code(),
        Some(141),
        "{what}: expected 141 (128 + SIGPIPE); stderr: {stderr}"
    );
}

#[test]
fn a_closed_stdout_ends_audit_and_verify_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    noisy_tree(&tree);
    let out = run_closed(
        &[
            "audit".as_ref(),
            tree.as_os_str(),
            "--glibc".as_ref(),
            "2.31".as_ref(),
        ],
        Closed::Stdout,
    );
    assert_clean_end(&out, "audit | head -0");
    let out = run_closed(
        &[
            "audit".as_ref(),
            tree.as_os_str(),
            "--glibc".as_ref(),
            "2.31".as_ref(),
            "--json".as_ref(),
        ],
        Closed::Stdout,
    );
    assert_clean_end(&out, "audit --json | head -0");

    let release = dir.path().join("release");
    release_dir(&release, &["app.tar.gz"]);
    let out = run_closed(
        &[
            "verify".as_ref(),
            "--checksums".as_ref(),
            release.as_os_str(),
        ],
        Closed::Stdout,
    );
    assert_clean_end(&out, "verify --checksums | head -0");
}

/// A release directory: the named files and a SHA256SUMS listing them.
fn release_dir(dir: &Path, names: &[&str]) {
    fs_err::create_dir_all(dir).unwrap();
    let mut sums = Vec::new();
    for name in names {
        fs_err::write(dir.join(name), name.as_bytes()).unwrap();
        sums.push((
            name.to_string(),
            hermetic::archive::sha256_bytes(name.as_bytes()),
        ));
    }
    hermetic::archive::write_sha256sums(dir, &sums).unwrap();
}

#[test]
fn a_closed_stderr_is_not_a_crash() {
    // An error with nowhere to be printed still ends with its own exit code
    // (2: the input is unusable), not a panic (101).
    let dir = tempfile::tempdir().unwrap();
    let out = run_closed(
        &[
            "-vv".as_ref(),
            "verify".as_ref(),
            "--checksums".as_ref(),
            dir.path().join("missing").as_os_str(),
        ],
        Closed::Stderr,
    );
    assert_eq!(out.status.code(), Some(2), "stdout: {}", short(&out.stdout));
}

/// The first 2000 bytes of an output, for assertion messages.
fn short(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(2000)]).into_owned()
}

/// A name that, printed raw, wipes the line and writes a verdict over it,
/// then reverses the rest (U+202E) and rings the bell.
const HOSTILE: &str = "lib\r\x1b[2Kverified: identical\x1b[0m\u{202e}os.\x07";

/// True when `text` holds a character that drives a terminal.
fn has_raw_controls(text: &str) -> bool {
    text.chars()
        .any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{202e}')
}

/// A plain tar of `(raw name, contents)` entries, names written as bytes.
fn raw_tar(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

fn run(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(common::hermetic_bin())
        .args(args)
        .env("HERMETIC_HOME", tempfile::tempdir().unwrap().keep())
        .output()
        .unwrap()
}

#[test]
fn names_from_archives_and_trees_are_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let mut junk = b"\x7fELF".to_vec();
    junk.resize(64, 0);

    // audit of an archive: the finding names the entry, escaped.
    let archive = dir.path().join("bundle.tar");
    let name = format!("{HOSTILE}.so");
    fs_err::write(&archive, raw_tar(&[(name.as_bytes(), &junk)])).unwrap();
    let out = run(&[
        "audit".as_ref(),
        archive.as_os_str(),
        "--glibc".as_ref(),
        "2.31".as_ref(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!has_raw_controls(&stdout), "raw controls in: {stdout:?}");
    assert!(
        stdout.contains("lib\\r\\x1b[2Kverified: identical"),
        "{stdout:?}"
    );
    assert!(stdout.contains("\\u{202e}"), "{stdout:?}");

    // --json stays exact: the name decodes back to what the archive holds.
    let out = run(&[
        "audit".as_ref(),
        archive.as_os_str(),
        "--glibc".as_ref(),
        "2.31".as_ref(),
        "--json".as_ref(),
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report.to_string().contains("\\u001b[2Kverified"),
        "{report}"
    );

    // An unpack refusal names the entry escaped (newline included).
    let refused = dir.path().join("refused.tar");
    let name = format!("/{HOSTILE}\nverified: identical");
    fs_err::write(&refused, raw_tar(&[(name.as_bytes(), b"x")])).unwrap();
    let out = run(&["sbom".as_ref(), refused.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!has_raw_controls(&stderr), "raw controls in: {stderr:?}");
    assert!(
        !stderr.lines().any(|l| l.starts_with("verified")),
        "a line of its own from the entry name: {stderr:?}"
    );

    // verify --checksums lists names from SHA256SUMS.
    let release = dir.path().join("release");
    release_dir(&release, &["app\x1b[2K\u{202e}zg.rat.tar.gz"]);
    let out = run(&[
        "verify".as_ref(),
        "--checksums".as_ref(),
        release.as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!has_raw_controls(&stdout), "raw controls in: {stdout:?}");
}

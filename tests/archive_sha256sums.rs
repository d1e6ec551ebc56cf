//! SHA256SUMS: written in the format the real `sha256sum -c` accepts, read
//! back with line-numbered errors.

// Tests fail by panicking: unwrap, expect and panic! are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::process::Command;

use hermetic::archive::{ArchiveError, read_sha256sums, sha256_file, write_sha256sums};

#[test]
fn sha256sum_accepts_what_we_write() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("b.tar.gz"), b"bundle bytes").unwrap();
    fs::write(dir.path().join("a.json"), b"{}\n").unwrap();
    let mut files = Vec::new();
    for name in ["b.tar.gz", "a.json"] {
        let (hex, size) = sha256_file(&dir.path().join(name)).unwrap();
        assert!(size > 0);
        files.push((name.to_owned(), hex));
    }
    write_sha256sums(dir.path(), &files).unwrap();

    let text = fs::read_to_string(dir.path().join("SHA256SUMS")).unwrap();
    let names: Vec<&str> = text
        .lines()
        .map(|l| l.split("  ").nth(1).unwrap())
        .collect();
    assert_eq!(names, ["a.json", "b.tar.gz"], "not sorted by name");
    // Known vector: sha256("{}\n").
    assert!(
        text.starts_with(
            "ca3d163bab055381827226140568f3bef7eaac187cebd76878e0b63e9e442356  a.json\n"
        ),
        "{text}"
    );

    let check = Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    let mut back = read_sha256sums(&dir.path().join("SHA256SUMS")).unwrap();
    back.sort();
    files.sort();
    assert_eq!(back, files);

    // And a tampered file fails the real tool.
    fs::write(dir.path().join("b.tar.gz"), b"bundle bytez").unwrap();
    let check = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!check.status.success());
}

#[test]
fn malformed_lines_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("SHA256SUMS");
    let good = format!("{}  a\n", "0".repeat(64));
    for (bad, what) in [
        ("nothex  b\n".to_owned(), "not 64 lowercase hex"),
        (format!("{} b\n", "1".repeat(64)), "two spaces"),
        (format!("{}  \n", "1".repeat(64)), "missing file name"),
        (format!("{}  a\n", "1".repeat(64)), "listed twice"),
    ] {
        fs::write(&path, format!("{good}{bad}")).unwrap();
        let err = read_sha256sums(&path).unwrap_err();
        assert!(
            matches!(err, ArchiveError::MalformedSha256Sums { line: 2, .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains("SHA256SUMS:2:") && msg.contains(what), "{msg}");
    }
}

#[test]
fn write_rejects_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let err = write_sha256sums(dir.path(), &[("x".into(), "ABC".into())]).unwrap_err();
    assert!(err.to_string().contains("`ABC`"), "{err}");
    let err = write_sha256sums(dir.path(), &[("a\nb".into(), "0".repeat(64))]).unwrap_err();
    assert!(
        matches!(err, ArchiveError::InvalidChecksumName { .. }),
        "{err}"
    );
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

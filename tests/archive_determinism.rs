//! The archive writer's determinism rules, checked from outside: the same
//! tree built twice with different metadata noise gives the same bytes, and
//! GNU tar sees the normalised owners, modes and times.

// Tests fail by panicking: unwrap, expect and panic! are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use hermetic::archive::{
    ArchiveEntry, ArchiveError, ArchiveOptions, Compression, sha256_file, tree_hash,
    write_archive_atomically, write_entries, write_tree,
};

const EPOCH: u64 = 1_700_000_000; // 2023-11-14 22:13:20 UTC

fn long_dir() -> String {
    // > 100 bytes so GNU long-name records are needed.
    ["a-rather-long-directory-name"; 5].join("/")
}

/// Build the same logical tree; `noise` varies everything that must not
/// matter: creation order, mtimes, permission bits other than exec.
fn make_tree(root: &Path, noise: bool) {
    let (file_mode, exec_mode, dir_mode) = if noise {
        (0o600, 0o700, 0o700)
    } else {
        (0o664, 0o775, 0o775)
    };
    let mut files: Vec<(String, &[u8], bool)> = vec![
        ("bin/tool".into(), b"#!/bin/sh\necho hi\n", true),
        ("lib/data.txt".into(), b"hello\n", false),
        ("a-b".into(), b"sorts before a/b\n", false),
        ("a/b".into(), b"x", false),
        (format!("{}/deep.py", long_dir()), b"print('deep')\n", false),
        ("empty".into(), b"", false),
    ];
    if noise {
        files.reverse();
    }
    for (rel, content, exec) in &files {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        fs::set_permissions(
            &p,
            fs::Permissions::from_mode(if *exec { exec_mode } else { file_mode }),
        )
        .unwrap();
    }
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    symlink("../lib/data.txt", root.join("bin/data-link")).unwrap();
    fs::hard_link(root.join("lib/data.txt"), root.join("lib/hardlinked.txt")).unwrap();
    let when = if noise {
        SystemTime::now()
    } else {
        SystemTime::UNIX_EPOCH + Duration::from_secs(86_400)
    };
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            fs::File::options()
                .append(true)
                .open(entry.path())
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
        if entry.file_type().is_dir() {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(dir_mode)).unwrap();
        }
    }
}

fn opts(compression: Compression) -> ArchiveOptions {
    ArchiveOptions {
        source_date_epoch: EPOCH,
        compression,
    }
}

#[test]
fn same_tree_twice_gives_identical_bytes() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    make_tree(a.path(), false);
    make_tree(b.path(), true);
    let zstd = Compression::Zstd { level: 10 };
    for compression in [Compression::Gzip, zstd, Compression::None] {
        let mut out_a = Vec::new();
        let mut out_b = Vec::new();
        let sa = write_tree(a.path(), "app", &mut out_a, &opts(compression)).unwrap();
        let sb = write_tree(b.path(), "app", &mut out_b, &opts(compression)).unwrap();
        assert_eq!(out_a, out_b, "{compression:?} archives differ");
        assert_eq!(sa, sb);
        assert_eq!(sa.size, out_a.len() as u64);
        assert_eq!(sa.files, 7);
        assert_eq!(sa.sha256.len(), 64);
        if compression == Compression::None {
            assert_eq!(sa.sha256, sa.tar_sha256);
            assert_eq!(sa.size, sa.tar_size);
        } else if compression == zstd {
            assert_ne!(sa.sha256, sa.tar_sha256);
            assert_eq!(out_a[..4], hermetic::archive::ZSTD_MAGIC);
        } else {
            assert_ne!(sa.sha256, sa.tar_sha256);
            // gzip header: no FNAME flag, mtime 0.
            assert_eq!(&out_a[..4], &[0x1f, 0x8b, 8, 0]);
            assert_eq!(&out_a[4..8], &[0, 0, 0, 0]);
        }
    }
    assert_eq!(tree_hash(a.path()).unwrap(), tree_hash(b.path()).unwrap());
}

#[test]
fn gnu_tar_sees_normalised_metadata() {
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path(), true);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("app.tar.gz");
    let summary =
        write_archive_atomically(src.path(), "app", &dest, &opts(Compression::Gzip)).unwrap();
    assert_eq!(
        sha256_file(&dest).unwrap(),
        (summary.sha256.clone(), summary.size)
    );

    let listing = Command::new("tar")
        .args(["--numeric-owner", "--full-time", "-tvzf"])
        .arg(&dest)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(
        listing.status.success(),
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    let listing = String::from_utf8(listing.stdout).unwrap();
    let lines: Vec<&str> = listing.lines().collect();
    assert!(lines.len() >= 12, "{listing}");
    for line in &lines {
        assert!(line.contains(" 0/0 "), "owner not 0/0: {line}");
        assert!(
            line.contains("2023-11-14 22:13:20"),
            "mtime not the epoch: {line}"
        );
        let mode = line.split_whitespace().next().unwrap();
        assert!(
            ["drwxr-xr-x", "-rw-r--r--", "-rwxr-xr-x", "lrwxrwxrwx"].contains(&mode),
            "mode not normalised: {line}"
        );
    }
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().nth(5).unwrap())
        .collect();
    assert_eq!(names[0].trim_end_matches('/'), "app");
    let mut sorted = names.clone();
    sorted.sort_by(|a, b| {
        a.trim_end_matches('/')
            .as_bytes()
            .cmp(b.trim_end_matches('/').as_bytes())
    });
    assert_eq!(names, sorted, "entries not in byte order");
    assert!(listing.contains("app/bin/tool"));
    assert!(listing.contains("app/bin/data-link -> ../lib/data.txt"));
    assert!(listing.contains(&format!("app/{}/deep.py", long_dir())));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("-rwxr-xr-x") && l.contains("app/bin/tool"))
    );
    // The hard link is stored as a plain file.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("-rw-r--r--") && l.ends_with("app/lib/hardlinked.txt"))
    );

    // GNU tar extracts it, long paths included.
    let x = tempfile::tempdir().unwrap();
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(&dest)
        .arg("-C")
        .arg(x.path())
        .status()
        .unwrap();
    assert!(st.success());
    let deep = x.path().join("app").join(long_dir()).join("deep.py");
    assert_eq!(fs::read_to_string(deep).unwrap(), "print('deep')\n");
    assert_eq!(
        fs::read_to_string(x.path().join("app/bin/data-link")).unwrap(),
        "hello\n"
    );
}

#[test]
fn rejects_escaping_and_absolute_symlinks() {
    let src = tempfile::tempdir().unwrap();
    fs::create_dir(src.path().join("d")).unwrap();
    symlink("../../etc/passwd", src.path().join("d/escape")).unwrap();
    let err = write_tree(src.path(), "app", Vec::new(), &opts(Compression::None)).unwrap_err();
    assert!(matches!(err, ArchiveError::EscapingSymlink { .. }), "{err}");
    assert!(err.to_string().contains("d/escape"), "{err}");

    let src = tempfile::tempdir().unwrap();
    symlink("/usr/lib/libc.so.6", src.path().join("abs")).unwrap();
    let err = write_tree(src.path(), "app", Vec::new(), &opts(Compression::None)).unwrap_err();
    assert!(matches!(err, ArchiveError::AbsoluteSymlink { .. }), "{err}");
    assert!(
        err.to_string().contains("abs") && err.to_string().contains("/usr/lib/libc.so.6"),
        "{err}"
    );
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(st.success());
}

#[test]
fn atomic_write_leaves_nothing_on_failure() {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("ok.txt"), "fine").unwrap();
    mkfifo(&src.path().join("pipe"));
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("app.tar.gz");
    let err =
        write_archive_atomically(src.path(), "app", &dest, &opts(Compression::Gzip)).unwrap_err();
    assert!(
        matches!(err, ArchiveError::UnsupportedFileType { kind: "fifo", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("pipe"), "{err}");
    assert_eq!(
        fs::read_dir(out.path()).unwrap().count(),
        0,
        "temp file left behind"
    );

    // A previous archive at `dest` survives a failed rewrite untouched.
    fs::write(&dest, "previous").unwrap();
    write_archive_atomically(src.path(), "app", &dest, &opts(Compression::Gzip)).unwrap_err();
    assert_eq!(fs::read_to_string(&dest).unwrap(), "previous");
    assert_eq!(fs::read_dir(out.path()).unwrap().count(), 1);
}

#[test]
fn write_entries_checks_order_and_builds_subsets() {
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path(), false);
    let e = |a: &str, s: &str| ArchiveEntry {
        archive_path: a.into(),
        source: src.path().join(s),
    };
    let err = write_entries(
        &[e("b", "lib/data.txt"), e("a", "a-b")],
        Vec::new(),
        &opts(Compression::None),
    )
    .unwrap_err();
    assert!(matches!(err, ArchiveError::UnsortedEntries { .. }), "{err}");
    let err = write_entries(&[e("../x", "a-b")], Vec::new(), &opts(Compression::None)).unwrap_err();
    assert!(
        matches!(err, ArchiveError::InvalidEntryPath { .. }),
        "{err}"
    );

    let entries = [e("layer", "lib"), e("layer/data.txt", "lib/data.txt")];
    let mut one = Vec::new();
    let mut two = Vec::new();
    let s1 = write_entries(&entries, &mut one, &opts(Compression::Gzip)).unwrap();
    let s2 = write_entries(&entries, &mut two, &opts(Compression::Gzip)).unwrap();
    assert_eq!((one, s1.clone()), (two, s2));
    assert_eq!(s1.files, 1);
}

#[test]
fn tree_hash_tracks_content_exec_and_links_but_not_git_or_mtime() {
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path(), false);
    let base = tree_hash(src.path()).unwrap();

    fs::create_dir_all(src.path().join(".git/objects")).unwrap();
    fs::write(src.path().join(".git/HEAD"), "ref: x").unwrap();
    fs::File::options()
        .append(true)
        .open(src.path().join("a/b"))
        .unwrap()
        .set_modified(SystemTime::now())
        .unwrap();
    assert_eq!(
        tree_hash(src.path()).unwrap(),
        base,
        ".git or mtime changed the hash"
    );

    fs::set_permissions(src.path().join("a/b"), fs::Permissions::from_mode(0o755)).unwrap();
    let exec = tree_hash(src.path()).unwrap();
    assert_ne!(exec, base);
    fs::set_permissions(src.path().join("a/b"), fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(tree_hash(src.path()).unwrap(), base);

    fs::write(src.path().join("a/b"), "y").unwrap();
    assert_ne!(tree_hash(src.path()).unwrap(), base);
    fs::write(src.path().join("a/b"), "x").unwrap();

    fs::remove_file(src.path().join("bin/data-link")).unwrap();
    symlink("../lib/hardlinked.txt", src.path().join("bin/data-link")).unwrap();
    assert_ne!(tree_hash(src.path()).unwrap(), base);
}

/// Every compression reads back, through `open_archive` (which goes by the
/// first bytes, not the name), to the same uncompressed tar stream, whose
/// hash is the summary's `tar_sha256`; a bad zstd level is refused.
#[test]
fn every_compression_reads_back_to_the_same_tar() {
    use std::io::Read;
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path(), false);
    let out = tempfile::tempdir().unwrap();
    let mut tars = Vec::new();
    for (compression, name) in [
        (Compression::Gzip, "a.tar.gz"),
        (Compression::Zstd { level: 3 }, "a.tar.zst"),
        (Compression::Zstd { level: 19 }, "misnamed.tar.gz"),
        (Compression::None, "a.tar"),
    ] {
        let dest = out.path().join(name);
        let summary = hermetic::archive::write_archive_atomically(
            src.path(),
            "app",
            &dest,
            &opts(compression),
        )
        .unwrap();
        let mut tar = Vec::new();
        hermetic::archive::open_archive(&dest)
            .unwrap()
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(
            hermetic::archive::sha256_bytes(&tar),
            summary.tar_sha256,
            "{name}"
        );
        tars.push(tar);
        let unpacked = out.path().join(format!("{name}.d"));
        hermetic::archive::unpack_safe(
            hermetic::archive::open_archive(&dest).unwrap(),
            &unpacked,
            1 << 30,
        )
        .unwrap();
        assert_eq!(
            tree_hash(&unpacked.join("app")).unwrap(),
            tree_hash(src.path()).unwrap(),
            "{name}"
        );
    }
    assert!(tars.windows(2).all(|w| w[0] == w[1]));
    let err = write_tree(
        src.path(),
        "app",
        Vec::new(),
        &opts(Compression::Zstd { level: 23 }),
    )
    .unwrap_err();
    assert!(err.to_string().contains("zstd level 23"), "{err}");
}

/// An existing tar (a rootfs we must not re-tar) compresses
/// deterministically, and the summary's `tar_sha256` is the input's hash.
#[test]
fn compress_tar_keeps_the_stream_and_its_hash() {
    use std::io::Read;
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path(), false);
    let out = tempfile::tempdir().unwrap();
    let plain = out.path().join("rootfs.tar");
    let p = hermetic::archive::write_archive_atomically(
        src.path(),
        "",
        &plain,
        &opts(Compression::None),
    )
    .unwrap();
    let input = fs_err::read(&plain).unwrap();
    for compression in [Compression::Gzip, Compression::Zstd { level: 10 }] {
        let dest = out.path().join("layer");
        let a =
            hermetic::archive::compress_tar_file_atomically(&plain, &dest, compression).unwrap();
        let first = fs_err::read(&dest).unwrap();
        let b =
            hermetic::archive::compress_tar_file_atomically(&plain, &dest, compression).unwrap();
        assert_eq!(a, b, "{compression:?}");
        assert_eq!(first, fs_err::read(&dest).unwrap(), "{compression:?}");
        assert_eq!(a.tar_sha256, p.sha256);
        assert_eq!(a.tar_size, input.len() as u64);
        assert_eq!(a.sha256, hermetic::archive::sha256_bytes(&first));
        let mut back = Vec::new();
        hermetic::archive::open_archive(&dest)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == input, "{compression:?} does not read back");
    }
}

//! `unpack_safe` against crafted hostile tar streams: each must be refused
//! with an error naming the entry, and nothing may land outside `dest`.

// Tests fail by panicking: unwrap, expect and panic! are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use hermetic::archive::{
    ArchiveError, ArchiveOptions, Compression, UnsafeReason, unpack_safe, write_tree,
};

/// A raw tar entry: name and link name bypass the tar crate's own checks.
struct Raw<'a> {
    name: &'a str,
    kind: tar::EntryType,
    mode: u32,
    link: &'a str,
    data: &'a [u8],
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> Raw<'a> {
    Raw {
        name,
        kind: tar::EntryType::Regular,
        mode: 0o644,
        link: "",
        data,
    }
}

fn symlink<'a>(name: &'a str, link: &'a str) -> Raw<'a> {
    Raw {
        name,
        kind: tar::EntryType::Symlink,
        mode: 0o777,
        link,
        data: b"",
    }
}

fn craft(entries: &[Raw]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let old = h.as_old_mut();
        old.name[..e.name.len()].copy_from_slice(e.name.as_bytes());
        old.linkname[..e.link.len()].copy_from_slice(e.link.as_bytes());
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_size(e.data.len() as u64);
        h.set_cksum();
        b.append(&h, e.data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Unpack into `<tmp>/dest`; returns the error and checks `<tmp>` holds
/// nothing but `dest` afterwards.
fn refuse(entries: &[Raw]) -> ArchiveError {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    let err = unpack_safe(craft(entries).as_slice(), &dest, 1 << 20).unwrap_err();
    let outside: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec!["dest"], "something escaped dest");
    err
}

fn assert_refused(err: &ArchiveError, entry: &str, want: impl Fn(&UnsafeReason) -> bool) {
    match err {
        ArchiveError::UnsafeEntry { entry: e, reason } => {
            assert_eq!(e, entry, "{err}");
            assert!(want(reason), "unexpected reason: {err}");
            assert!(err.to_string().contains(entry), "{err}");
        }
        other => panic!("expected UnsafeEntry for {entry}, got {other}"),
    }
}

#[test]
fn absolute_path() {
    let err = refuse(&[file("/tmp/hermetic-evil", b"x")]);
    assert_refused(&err, "/tmp/hermetic-evil", |r| {
        *r == UnsafeReason::AbsolutePath
    });
}

#[test]
fn parent_dir_component() {
    let err = refuse(&[file("ok/../../evil", b"x")]);
    assert_refused(&err, "ok/../../evil", |r| *r == UnsafeReason::ParentDir);
}

#[test]
fn absolute_symlink() {
    let err = refuse(&[symlink("etc", "/etc")]);
    assert_refused(&err, "etc", |r| {
        matches!(r, UnsafeReason::LinkEscapes { .. })
    });
}

#[test]
fn escaping_symlink() {
    let err = refuse(&[symlink("sub/up", "../../outside")]);
    assert_refused(&err, "sub/up", |r| {
        matches!(r, UnsafeReason::LinkEscapes { .. })
    });
}

#[test]
fn symlink_chain_escaping_through_another_link() {
    // Each target stays inside lexically, but `s` points up, so following
    // `x` physically goes to dest/a/b -> s -> dest, then `..` leaves dest.
    let err = refuse(&[symlink("a/b/s", "../.."), symlink("a/b/x", "s/../..")]);
    assert_refused(&err, "a/b/x", |r| {
        matches!(r, UnsafeReason::LinkEscapes { .. })
    });
}

#[test]
fn writing_through_a_symlink() {
    // The link is deferred, so `d/x` makes `d` a directory and the link then
    // conflicts with it; either way nothing is written through a link.
    let err = refuse(&[symlink("d", "sub"), file("d/x", b"x")]);
    assert_refused(&err, "d", |r| matches!(r, UnsafeReason::Conflict { .. }));
}

#[test]
fn hardlink_escapes() {
    let err = refuse(&[Raw {
        name: "pw",
        kind: tar::EntryType::Link,
        mode: 0o644,
        link: "/etc/passwd",
        data: b"",
    }]);
    assert_refused(&err, "pw", |r| {
        matches!(r, UnsafeReason::LinkEscapes { .. })
    });
    let err = refuse(&[Raw {
        name: "pw",
        kind: tar::EntryType::Link,
        mode: 0o644,
        link: "../x",
        data: b"",
    }]);
    assert_refused(&err, "pw", |r| {
        matches!(r, UnsafeReason::LinkEscapes { .. })
    });
    let err = refuse(&[Raw {
        name: "pw",
        kind: tar::EntryType::Link,
        mode: 0o644,
        link: "missing",
        data: b"",
    }]);
    assert_refused(&err, "pw", |r| {
        matches!(r, UnsafeReason::BadHardLink { .. })
    });
}

#[test]
fn device_and_fifo_entries() {
    for (kind, name) in [
        (tar::EntryType::Fifo, "fifo"),
        (tar::EntryType::Char, "null"),
        (tar::EntryType::Block, "sda"),
    ] {
        let err = refuse(&[Raw {
            name,
            kind,
            mode: 0o644,
            link: "",
            data: b"",
        }]);
        assert_refused(&err, name, |r| {
            matches!(r, UnsafeReason::SpecialFile { .. })
        });
    }
}

#[test]
fn size_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let big = vec![0u8; 4096];
    let tar = craft(&[file("small", b"abc"), file("big", &big)]);
    let err = unpack_safe(tar.as_slice(), &tmp.path().join("d"), 1000).unwrap_err();
    assert!(
        matches!(&err, ArchiveError::SizeLimit { entry, limit: 1000 } if entry == "big"),
        "{err}"
    );
}

#[test]
fn size_cap_names_the_limit_and_how_to_raise_it() {
    let err = ArchiveError::SizeLimit {
        entry: "big".into(),
        limit: 64 << 30,
    };
    let text = err.to_string();
    assert!(text.contains("64.00 GiB"), "{text}");
    assert!(text.contains("HERMETIC_UNPACK_LIMIT=128G"), "{text}");
}

/// An entry that claims more than the file system has free is refused
/// before a byte of it is written, naming the destination and what is
/// free there (the header comes first; the stream may hold nothing more).
#[test]
fn an_entry_larger_than_the_free_space_is_refused_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_path("huge.bin").unwrap();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(1 << 55);
    h.set_cksum();
    let mut tar = craft(&[file("small", b"abc")]);
    // Drop the end-of-archive blocks and put the huge header after `small`.
    tar.truncate(tar.len() - 1024);
    tar.extend_from_slice(h.as_bytes());
    let dest = tmp.path().join("d");
    let err = unpack_safe(tar.as_slice(), &dest, u64::MAX).unwrap_err();
    match &err {
        ArchiveError::NoSpace {
            dest: d,
            entry,
            needed,
            free,
        } => {
            assert_eq!(d, &dest);
            assert_eq!(entry, "huge.bin");
            assert_eq!(*needed, (1 << 55) + 3);
            assert!(*free > 0 && *free < 1 << 55, "{free}");
        }
        other => panic!("expected NoSpace, got {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("free there") && text.contains("TMPDIR"),
        "{text}"
    );
    assert!(!dest.join("huge.bin").exists());
}

#[test]
fn setuid_and_setgid_are_stripped() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = craft(&[Raw {
        name: "su",
        kind: tar::EntryType::Regular,
        mode: 0o6755,
        link: "",
        data: b"#!/bin/sh\n",
    }]);
    unpack_safe(tar.as_slice(), tmp.path(), 1 << 20).unwrap();
    let mode = fs::metadata(tmp.path().join("su"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
}

#[test]
fn refuses_non_empty_destination() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("x"), "x").unwrap();
    let err = unpack_safe(craft(&[file("a", b"a")]).as_slice(), tmp.path(), 1 << 20).unwrap_err();
    assert!(
        matches!(err, ArchiveError::DestinationNotEmpty { .. }),
        "{err}"
    );
}

#[test]
fn round_trips_a_bundle() {
    let src = tempfile::tempdir().unwrap();
    let root = src.path();
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("lib")).unwrap();
    fs::write(root.join("lib/libfoo.so.1"), "elf").unwrap();
    std::os::unix::fs::symlink("libfoo.so.1", root.join("lib/libfoo.so")).unwrap();
    fs::write(root.join("bin/run"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("bin/run"), fs::Permissions::from_mode(0o755)).unwrap();
    let mut tar = Vec::new();
    let opts = ArchiveOptions {
        source_date_epoch: 1,
        compression: Compression::None,
    };
    write_tree(root, "app", &mut tar, &opts).unwrap();

    let out = tempfile::tempdir().unwrap();
    let s = unpack_safe(tar.as_slice(), out.path(), 1 << 20).unwrap();
    assert_eq!((s.files, s.symlinks, s.dirs), (2, 1, 3));
    let app = out.path().join("app");
    assert_eq!(
        fs::read_to_string(app.join("lib/libfoo.so")).unwrap(),
        "elf"
    );
    assert_eq!(
        fs::read_link(app.join("lib/libfoo.so")).unwrap(),
        Path::new("libfoo.so.1")
    );
    assert_eq!(
        fs::metadata(app.join("bin/run"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
}

//! Audit of fixture trees compiled with the host `cc` (gcc / glibc >= 2.34):
//! symbol versions against baselines, library and RPATH findings, archives,
//! and corrupt inputs that must be clear errors naming the file.

// Tests fail by panicking: unwrap, expect and panic! are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod elf_fixtures;

use std::path::Path;

use elf_fixtures::{MAIN, MEMCPY_LIB, cc, fix_main, libfix};
use hermetic::elf::ElfError;
use hermetic::elf::audit::{Finding, audit_path};
use hermetic::elf::reader::{ElfKind, glibc_version_of_libc, read_elf};

fn findings(report: &hermetic::elf::audit::AuditReport, path: &str) -> Vec<Finding> {
    report
        .reports
        .iter()
        .find(|r| r.path == path)
        .map(|r| r.findings.clone())
        .unwrap_or_default()
}

#[test]
fn glibc_2_34_symbol_fails_2_31_and_passes_2_36() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    cc(&tree, MAIN, "bin/app", &[]);

    let r = audit_path(&tree, "2.31".parse().unwrap()).unwrap();
    assert!(!r.compliant);
    assert!(
        findings(&r, "bin/app").contains(&Finding::SymbolVersionTooNew {
            symbol: Some("__libc_start_main".into()),
            version: "GLIBC_2.34".into(),
            library: "libc.so.6".into(),
        }),
        "{}",
        r.render_text()
    );
    let text = r.render_text();
    assert!(
        text.contains("bin/app: __libc_start_main@GLIBC_2.34"),
        "{text}"
    );
    assert!(
        text.lines()
            .last()
            .unwrap()
            .contains("lowest baseline: glibc 2.34"),
        "{text}"
    );

    let r = audit_path(&tree, "2.36".parse().unwrap()).unwrap();
    assert!(r.compliant, "{}", r.render_text());
    assert_eq!(
        r.lowest_baseline.map(|g| g.to_string()).as_deref(),
        Some("2.34")
    );
}

#[test]
fn memcpy_only_library_runs_on_2_17() {
    let dir = tempfile::tempdir().unwrap();
    let lib = cc(
        dir.path(),
        MEMCPY_LIB,
        "libcopy.so",
        &["-shared", "-fPIC", "-O0"],
    );
    let facts = read_elf(Path::new("libcopy.so"), &std::fs::read(&lib).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(facts.kind, ElfKind::Dyn);
    let libc = facts
        .version_needs
        .iter()
        .find(|n| n.library == "libc.so.6")
        .unwrap();
    let v214 = libc
        .versions
        .iter()
        .find(|v| v.name == "GLIBC_2.14")
        .unwrap();
    assert_eq!(v214.symbols, ["memcpy"]);

    let r = audit_path(dir.path(), "2.17".parse().unwrap()).unwrap();
    assert!(r.compliant, "{}", r.render_text());
    assert_eq!(
        r.lowest_baseline.map(|g| g.to_string()).as_deref(),
        Some("2.17")
    );
    assert_eq!(r.lowest_policy.as_deref(), Some("manylinux_2_17"));
}

#[test]
fn non_policy_library_rpath_and_resolution_findings() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("link");
    libfix(&link, "libfix.so");
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("lib")).unwrap();
    std::fs::copy(link.join("libfix.so"), tree.join("lib/libfix.so.1")).unwrap();

    fix_main(&tree, "bin/good", &link, &["-Wl,-rpath,$ORIGIN/../lib"]);
    fix_main(&tree, "bin/norpath", &link, &[]);
    fix_main(
        &tree,
        "bin/abs",
        &link,
        &["-Wl,-rpath,/opt/vendor/lib:$ORIGIN/../lib"],
    );

    let r = audit_path(&tree, "2.36".parse().unwrap()).unwrap();
    assert!(findings(&r, "bin/good").is_empty(), "{}", r.render_text());
    assert_eq!(
        findings(&r, "bin/norpath"),
        [Finding::NeededUnresolved {
            library: "libfix.so.1".into(),
            elsewhere: vec!["lib/libfix.so.1".into()],
        }]
    );
    assert_eq!(
        findings(&r, "bin/abs"),
        [Finding::NonOriginRunpath {
            tag: "RUNPATH".into(),
            entry: "/opt/vendor/lib".into(),
        }]
    );
    assert!(!r.compliant);
    // Layout findings do not change the baseline the symbols need.
    assert_eq!(
        r.lowest_baseline.map(|g| g.to_string()).as_deref(),
        Some("2.34")
    );

    // Without the library in the tree, the host would have to provide it.
    std::fs::remove_file(tree.join("lib/libfix.so.1")).unwrap();
    let r = audit_path(&tree, "2.36".parse().unwrap()).unwrap();
    assert_eq!(
        findings(&r, "bin/good"),
        [Finding::LibraryNotAllowed {
            library: "libfix.so.1".into()
        }]
    );
    assert!(r.render_text().contains(
        "bin/good: needs libfix.so.1, which is neither in the tree nor allowed by manylinux_2_36"
    ));
    assert_eq!(r.lowest_baseline, None);
}

#[test]
fn gnu_property_isa_level_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = cc(dir.path(), MAIN, "v2", &["-Wl,-z,x86-64-v2"]);
    let plain = cc(dir.path(), MAIN, "plain", &[]);
    let read = |p: &Path| read_elf(p, &std::fs::read(p).unwrap()).unwrap().unwrap();
    assert_eq!(read(&v2).x86_isa_level, Some(2));
    assert!(read(&plain).interpreter.is_some());
    assert_eq!(read(&plain).kind, ElfKind::Pie);
}

#[test]
fn archives_are_read_without_extracting_and_match_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("link");
    libfix(&link, "libfix.so");
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("lib")).unwrap();
    std::fs::copy(link.join("libfix.so"), tree.join("lib/libfix.so.1.0")).unwrap();
    std::os::unix::fs::symlink("libfix.so.1.0", tree.join("lib/libfix.so.1")).unwrap();
    fix_main(&tree, "bin/app", &link, &["-Wl,-rpath,$ORIGIN/../lib"]);

    let from_dir = audit_path(&tree, "2.31".parse().unwrap()).unwrap();

    let tgz = dir.path().join("bundle.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&tgz).unwrap(),
        flate2::Compression::fast(),
    );
    let mut builder = tar::Builder::new(gz);
    builder.follow_symlinks(false);
    builder.append_dir_all(".", &tree).unwrap();
    builder.into_inner().unwrap().finish().unwrap();
    let from_tgz = audit_path(&tgz, "2.31".parse().unwrap()).unwrap();

    assert_eq!(from_dir.reports, from_tgz.reports);
    assert_eq!(from_dir.elf_files, 2);
    assert_eq!(from_tgz.elf_files, 2);
    // The symlinked soname resolved: only the symbol version is reported.
    assert_eq!(
        findings(&from_tgz, "bin/app").len(),
        1,
        "{}",
        from_tgz.render_text()
    );
}

#[test]
fn archive_entries_outside_the_root_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evil.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&path).unwrap());
    let mut header = tar::Header::new_gnu();
    let name = b"../../etc/evil.so";
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_size(4);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append(&header, &b"\x7fELF"[..]).unwrap();
    builder.into_inner().unwrap();

    let err = audit_path(&path, "2.31".parse().unwrap()).unwrap_err();
    assert!(matches!(err, ElfError::UnsafeArchiveEntry { .. }), "{err}");
    assert!(err.to_string().contains("../../etc/evil.so"), "{err}");
    assert!(!dir.path().join("etc").exists());
}

/// Each corrupt input in a tree must be a finding naming it (the audit of
/// the other files goes on), not an error that stops the audit.
fn assert_corrupt(name: &str, bytes: &[u8], expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let r = audit_path(dir.path(), "2.31".parse().unwrap()).unwrap();
    assert!(!r.compliant, "{name}: {}", r.render_text());
    let text = r.render_text();
    assert!(
        matches!(&findings(&r, name)[..], [Finding::Corrupt { problem }] if problem.contains(expect)),
        "{name}: {text}"
    );
    assert!(text.contains(&format!("{name}: ")), "{text}");
}

#[test]
fn corrupt_inputs_are_findings_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::read(cc(dir.path(), MAIN, "real", &[])).unwrap();

    assert_corrupt("lib/empty.so", b"", "is empty");
    assert_corrupt("lib/text.so.1", b"not a library\n", "no ELF magic");
    assert_corrupt("lib/truncated.so", &real[..100], "not a valid ELF file");

    // A valid 64-byte header followed by garbage instead of the rest.
    let mut garbage = real[..64].to_vec();
    let mut x: u32 = 0x1234_5678;
    garbage.extend((0..4000).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as u8
    }));
    assert_corrupt("bin/garbage", &garbage, "not a valid ELF file");
}

#[test]
fn unknown_baseline_is_an_error_listing_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let err = audit_path(dir.path(), "2.30".parse().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("2.30") && err.contains("2.28") && err.contains("2.31"),
        "{err}"
    );
}

#[test]
fn glibc_version_of_the_host_libc() {
    let out = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let version = text.split_whitespace().nth(1).unwrap();
    let (major, minor) = version.split_once('.').unwrap();
    let want: (u32, u32) = (major.parse().unwrap(), minor.parse().unwrap());

    let libc = Path::new("/lib/x86_64-linux-gnu/libc.so.6");
    let bytes = std::fs::read(libc).unwrap();
    assert_eq!(glibc_version_of_libc(libc, &bytes).unwrap(), want);

    let dir = tempfile::tempdir().unwrap();
    let lib = cc(dir.path(), MEMCPY_LIB, "libcopy.so", &["-shared", "-fPIC"]);
    let err = glibc_version_of_libc(&lib, &std::fs::read(&lib).unwrap()).unwrap_err();
    assert!(err.to_string().contains("libcopy.so"), "{err}");
}

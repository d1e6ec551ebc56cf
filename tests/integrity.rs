//! Issue 14, "Integrity", against the real `hermetic` binary: damaged
//! archives (a flipped deflate byte, a bad zstd checksum, bytes appended)
//! are refused by `audit`, `sbom` and `image` with an error naming the
//! archive and nothing written. Every hostile input is made here, from an
//! archive hermetic's own writer produced.

// Tests fail by panicking: unwrap, expect and panic! are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod oci_fixture;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hermetic::archive::{ArchiveOptions, Compression, write_tree};

/// A real ELF shared library (from the SBOM fixtures).
const ELF: &[u8] = include_bytes!("fixtures/sbom/elf/libfoo-5e6f7a8b.so.1");

fn hermetic(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(common::hermetic_bin())
        .args(args)
        .output()
        .expect("run hermetic")
}

/// Incompressible bytes (xorshift): deflate stores them verbatim.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A bundle `image` and `sbom` accept and `audit` audits (its one library
/// a real ELF file, its one distribution with METADATA), with 64 KiB of
/// noise; returns its directory and the noise.
fn bundle(parent: &Path) -> (PathBuf, Vec<u8>) {
    let root = oci_fixture::make_bundle(parent, "demo", "1.0.0", "hello");
    fs_err::write(root.join("lib/libdep-0123abcd.so.1"), ELF).unwrap();
    fs_err::write(
        root.join("python/runtime/lib/python3.11/site-packages/demo-1.0.0.dist-info/METADATA"),
        "Metadata-Version: 2.1\nName: demo\nVersion: 1.0.0\n",
    )
    .unwrap();
    // A well-formed builder image ID, which the SBOM records as a hash.
    let meta_path = root.join(hermetic::bundle::META_PATH);
    let mut meta: hermetic::bundle::BundleMeta =
        serde_json::from_slice(&fs_err::read(&meta_path).unwrap()).unwrap();
    meta.builder.image_id = format!("sha256:{}", "ab".repeat(32));
    fs_err::write(&meta_path, meta.to_canonical_json().unwrap()).unwrap();
    let data = noise(64 * 1024);
    fs_err::write(root.join("share/noise.bin"), &data).unwrap();
    (root, data)
}

/// Archives `root` the way `hermetic build` does, into `dir/<name>`.
fn archive(root: &Path, dir: &Path, name: &str, compression: Compression) -> PathBuf {
    let path = dir.join(name);
    let out = fs_err::File::create(&path).unwrap();
    let opts = ArchiveOptions {
        source_date_epoch: 1_700_000_000,
        compression,
    };
    write_tree(root, "demo", out, &opts).unwrap();
    path
}

/// The damaged archives, each next to the intact ones in `dir`.
fn damaged(dir: &Path, gz: &Path, zst: &Path, data: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        fs_err::write(&path, bytes).unwrap();
        path
    };
    // One flipped byte inside the stored noise: the deflate stream stays
    // valid, only the CRC-32 tells (`gzip -t`: "crc error").
    let mut bytes = fs_err::read(gz).unwrap();
    let window = &data[40_000..40_032];
    let at = bytes
        .windows(window.len())
        .position(|w| w == window)
        .expect("incompressible data is stored verbatim");
    bytes[at + 5] ^= 0x20;
    let flipped = write("flipped-crc.tar.gz", &bytes);
    if let Ok(t) = Command::new("gzip").arg("-t").arg(&flipped).output() {
        let stderr = String::from_utf8_lossy(&t.stderr);
        assert!(stderr.contains("crc error"), "gzip -t: {stderr}");
    }
    out.push(flipped);
    // The zstd frame's last four bytes are its content checksum.
    let mut bytes = fs_err::read(zst).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    out.push(write("bad-checksum.tar.zst", &bytes));
    // Garbage appended after the compressed stream.
    for (src, name) in [(gz, "appended.tar.gz"), (zst, "appended.tar.zst")] {
        let mut bytes = fs_err::read(src).unwrap();
        bytes.extend_from_slice(b"\0appended garbage\n");
        out.push(write(name, &bytes));
    }
    out
}

/// Exit 2 and an error on stderr that names the archive.
fn assert_refused(out: &Output, archive: &Path, command: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = archive.file_name().unwrap().to_string_lossy();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{command} {name} should fail with exit 2\nstdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(&*name),
        "{command}: the error does not name {name}: {stderr}"
    );
}

#[test]
fn audit_and_sbom_refuse_damaged_archives() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, data) = bundle(tmp.path());
    let gz = archive(&root, tmp.path(), "demo.tar.gz", Compression::Gzip);
    let zst = archive(
        &root,
        tmp.path(),
        "demo.tar.zst",
        Compression::Zstd { level: 3 },
    );
    // The intact archives are audited and described.
    for good in [&gz, &zst] {
        let out = hermetic(&[
            "audit".as_ref(),
            good.as_os_str(),
            "--glibc".as_ref(),
            "2.31".as_ref(),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            matches!(out.status.code(), Some(0 | 1)) && stdout.contains("1 ELF files"),
            "audit {}: {stdout}{}",
            good.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let out = hermetic(&["sbom".as_ref(), good.as_os_str()]);
        assert!(
            out.status.success(),
            "sbom {}: {}",
            good.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for bad in damaged(tmp.path(), &gz, &zst, &data) {
        let out = hermetic(&[
            "audit".as_ref(),
            bad.as_os_str(),
            "--glibc".as_ref(),
            "2.31".as_ref(),
        ]);
        assert_refused(&out, &bad, "audit");
        assert!(out.stdout.is_empty(), "audit printed a report for {bad:?}");
        let sbom = tmp.path().join("demo.cdx.json");
        let out = hermetic(&[
            "sbom".as_ref(),
            bad.as_os_str(),
            "-o".as_ref(),
            sbom.as_os_str(),
        ]);
        assert_refused(&out, &bad, "sbom");
        assert!(!sbom.exists(), "sbom left {} behind", sbom.display());
    }
}

#[test]
fn image_refuses_damaged_archives_and_leaves_no_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, data) = bundle(tmp.path());
    let gz = archive(&root, tmp.path(), "demo.tar.gz", Compression::Gzip);
    let zst = archive(
        &root,
        tmp.path(),
        "demo.tar.zst",
        Compression::Zstd { level: 3 },
    );
    let images = tmp.path().join("images");
    fs_err::create_dir(&images).unwrap();
    let layout = images.join("layout");
    let image = |bundle: &Path| {
        hermetic(&[
            "image".as_ref(),
            bundle.as_os_str(),
            "--base".as_ref(),
            "trixie".as_ref(),
            "--oci-layout".as_ref(),
            layout.as_os_str(),
        ])
    };
    // The intact archive makes an image (needs the trixie rootfs, which
    // the oci_image tests need too).
    let out = image(&gz);
    assert!(
        out.status.success(),
        "image {}: {}",
        gz.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(layout.join("index.json").is_file());
    fs_err::remove_dir_all(&layout).unwrap();
    for bad in damaged(tmp.path(), &gz, &zst, &data) {
        let out = image(&bad);
        assert_refused(&out, &bad, "image");
        let left: Vec<_> = fs_err::read_dir(&images)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "image {bad:?} left {left:?} behind");
    }
}

/// `verify --checksums` must not read through a symlink out of the release
/// directory: today it printed the sha256 of the file behind `evil`.
#[test]
fn verify_refuses_names_that_resolve_outside_the_release() {
    let tmp = tempfile::tempdir().unwrap();
    let release = tmp.path().join("dist");
    fs_err::create_dir(&release).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", release.join("evil")).unwrap();
    // A directory link out of the release, with a plain name under it.
    std::os::unix::fs::symlink("/etc", release.join("etc")).unwrap();
    let passwd = hermetic::archive::sha256_file(Path::new("/etc/passwd"))
        .unwrap()
        .0;
    for name in ["evil", "etc/passwd"] {
        fs_err::write(
            release.join("SHA256SUMS"),
            format!("{}  {name}\n", "0".repeat(64)),
        )
        .unwrap();
        let out = hermetic(&[
            "verify".as_ref(),
            "--checksums".as_ref(),
            release.as_os_str(),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!("`{name}`")) && stderr.contains("SHA256SUMS"),
            "{name}: {stderr}"
        );
        assert!(
            !stdout.contains(&passwd) && !stderr.contains(&passwd),
            "{name}: leaked the hash of /etc/passwd"
        );
    }
    // A link that stays inside the release is fine.
    fs_err::write(release.join("real"), b"x").unwrap();
    fs_err::remove_file(release.join("evil")).unwrap();
    std::os::unix::fs::symlink("real", release.join("alias")).unwrap();
    let x = hermetic::archive::sha256_file(&release.join("real"))
        .unwrap()
        .0;
    fs_err::write(release.join("SHA256SUMS"), format!("{x}  alias\n")).unwrap();
    let out = hermetic(&[
        "verify".as_ref(),
        "--checksums".as_ref(),
        release.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Junk given to `audit` is an error naming it, never "compliant"; one
/// corrupt ELF file in a tree is a finding and the others are still
/// audited (exit 1).
#[test]
fn audit_does_not_call_junk_compliant() {
    let tmp = tempfile::tempdir().unwrap();
    let mut header = [0u8; 64];
    header[..4].copy_from_slice(b"\x7fELF");
    header[4..7].copy_from_slice(&[2, 1, 1]); // ELF64, little-endian, version 1
    let mut zeros = b"\x7fELF".to_vec();
    zeros.resize(4096, 0);
    for (name, bytes) in [
        ("empty", &b""[..]),
        ("magic-zeros", &zeros[..]),
        ("header-zeros", &header[..]),
    ] {
        let path = tmp.path().join(name);
        fs_err::write(&path, bytes).unwrap();
        let out = hermetic(&[
            "audit".as_ref(),
            path.as_os_str(),
            "--glibc".as_ref(),
            "2.31".as_ref(),
        ]);
        assert_refused(&out, &path, "audit");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("compliant"),
            "{name}"
        );
    }
    // A tree and its archive: a real library, and a corrupt one.
    let tree = tmp.path().join("tree");
    fs_err::create_dir_all(tree.join("lib")).unwrap();
    fs_err::write(tree.join("lib/libfoo-5e6f7a8b.so.1"), ELF).unwrap();
    fs_err::write(tree.join("lib/libbroken.so.1"), &zeros).unwrap();
    let tgz = archive(&tree, tmp.path(), "tree.tar.gz", Compression::Gzip);
    for target in [&tree, &tgz] {
        let out = hermetic(&[
            "audit".as_ref(),
            target.as_os_str(),
            "--glibc".as_ref(),
            "2.31".as_ref(),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("libbroken.so.1: is not a valid ELF file"),
            "{stdout}"
        );
        assert!(stdout.contains("1 ELF files of 2"), "{stdout}");
        assert!(stdout.contains("NOT compliant"), "{stdout}");
    }
}

#[test]
fn a_plain_tar_cut_at_a_block_boundary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (root, _) = bundle(dir.path());
    let tar = archive(&root, dir.path(), "whole.tar", Compression::None);
    let bytes = fs_err::read(&tar).unwrap();
    // Without its end-of-archive blocks, and cut just after the first
    // entries: the tar crate sees a clean end either way.
    for (name, len) in [("no-end.tar", bytes.len() - 1024), ("cut.tar", 4 * 512)] {
        let cut = dir.path().join(name);
        fs_err::write(&cut, &bytes[..len]).unwrap();
        for command in ["audit", "sbom"] {
            let mut args: Vec<&std::ffi::OsStr> = vec![command.as_ref(), cut.as_os_str()];
            if command == "audit" {
                args.extend([
                    std::ffi::OsStr::new("--glibc"),
                    std::ffi::OsStr::new("2.31"),
                ]);
            }
            let out = hermetic(&args);
            assert_refused(&out, &cut, command);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("truncated"), "{command} {name}: {stderr}");
        }
    }
}

/// The unpack limit is one setting, `HERMETIC_UNPACK_LIMIT`, for every
/// command that unpacks a bundle archive: below the bundle's size `sbom`
/// refuses it naming the limit and the setting; a malformed value is an
/// error naming the variable; raised, the same archive goes through.
#[test]
fn the_unpack_limit_is_named_and_can_be_raised() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, _) = bundle(tmp.path());
    let gz = archive(&root, tmp.path(), "demo.tar.gz", Compression::Gzip);
    let sbom = |limit: &str| {
        Command::new(common::hermetic_bin())
            .arg("sbom")
            .arg(&gz)
            .arg("--output")
            .arg(tmp.path().join("demo.cdx.json"))
            .env("HERMETIC_UNPACK_LIMIT", limit)
            .output()
            .unwrap()
    };
    let out = sbom("16K");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unpack limit of 16.00 KiB") && stderr.contains("HERMETIC_UNPACK_LIMIT="),
        "{stderr}"
    );
    assert!(!tmp.path().join("demo.cdx.json").exists());
    let out = sbom("lots");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("invalid HERMETIC_UNPACK_LIMIT `lots`"),
        "{stderr}"
    );
    let out = sbom("1G");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

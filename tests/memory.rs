//! Issue 14, "Bounded resources", against the real `hermetic` binary: a
//! small archive that inflates to hundreds of MiB (a gzip bomb whose one
//! entry is a real ELF library padded with zeros, as big as libtorch) is
//! audited in memory bounded by a constant: the huge entry goes through an
//! unlinked temporary file, and is audited like any other.
//! The bomb is made here, streamed through the gzip encoder; nothing large
//! is kept on disk or in this process.

// Tests fail by panicking: unwrap, expect and panic! are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::process::Command;

/// A real ELF shared library (from the SBOM fixtures).
const ELF: &[u8] = include_bytes!("fixtures/sbom/elf/libfoo-5e6f7a8b.so.1");

/// How far the bomb inflates: well past what the audit may hold.
const BOMB_LEN: u64 = 320 << 20;

/// Peak resident memory allowed for auditing the bomb; `main` (which read
/// every ELF entry whole) needs more than `BOMB_LEN`.
const RSS_LIMIT_KIB: i64 = 160 << 10;

/// The largest resident set of any child this process waited for, in KiB.
fn children_max_rss_kib() -> i64 {
    // SAFETY: getrusage only writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    usage.ru_maxrss
}

#[test]
fn audit_of_a_gzip_bomb_is_bounded_and_audits_the_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let bomb = tmp.path().join("bomb.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        fs_err::File::create(&bomb).unwrap(),
        flate2::Compression::best(),
    );
    let mut tar = tar::Builder::new(gz);
    let mut add = |name: &str, len: u64, data: &mut dyn Read| {
        let mut header = tar::Header::new_gnu();
        header.set_size(len);
        header.set_mode(0o755);
        header.set_cksum();
        tar.append_data(&mut header, name, data).unwrap();
    };
    add(
        "demo/lib/libfoo-5e6f7a8b.so.1",
        ELF.len() as u64,
        &mut &ELF[..],
    );
    let mut zeros = ELF.chain(std::io::repeat(0).take(BOMB_LEN - ELF.len() as u64));
    add("demo/lib/libbomb.so.1", BOMB_LEN, &mut zeros);
    let mut gz = tar.into_inner().unwrap();
    gz.flush().unwrap();
    gz.finish().unwrap();
    let size = fs_err::metadata(&bomb).unwrap().len();
    assert!(size < 2 << 20, "the bomb is {size} bytes compressed");

    let before = children_max_rss_kib();
    let out = Command::new(common::hermetic_bin())
        .args([
            "audit".as_ref(),
            bomb.as_os_str(),
            "--glibc".as_ref(),
            "2.31".as_ref(),
        ])
        .output()
        .expect("run hermetic");
    let rss = children_max_rss_kib();
    let text = common::text(&out);
    assert!(
        rss < RSS_LIMIT_KIB,
        "audit of a {size}-byte bomb peaked at {rss} KiB (before: {before} KiB)"
    );
    // Audited like the small copy of the same library: the same finding
    // (its fixture needs a libyaml the archive does not hold).
    assert_eq!(out.status.code(), Some(1), "{text}");
    for lib in ["libbomb.so.1", "libfoo-5e6f7a8b.so.1"] {
        assert!(
            text.contains(&format!("demo/lib/{lib}: needs libyaml-0-1a2b3c4d.so.2")),
            "{text}"
        );
    }
    assert!(text.contains("2 ELF files of 2"), "{text}");
}

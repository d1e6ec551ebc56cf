//! Fuzzes the streaming archive scan behind `hermetic audit <archive>` (and
//! the ELF facts `sbom` and the repair planner use): the input is written to
//! `in.tar` and audited with `elf::audit::audit_path`, which opens it through
//! `archive::ArchiveReader` (gzip, zstd or plain tar, by its first bytes),
//! reads the tar stream without extracting anything, parses every ELF entry,
//! checks the stream is intact to its end, then resolves every `DT_NEEDED`
//! through the tree's links.
//!
//! Properties: no panic, no hang, no unbounded memory; a result is a report or
//! an error, and both render as text. Seeds: `fuzz/seeds/archive_scan`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let input = tmp.path().join("in.tar");
    std::fs::write(&input, data).expect("write the input");
    match hermetic::elf::audit::audit_path(&input, hermetic::glibc::Glibc::new(2, 28)) {
        Ok(report) => {
            assert!(
                report.elf_files <= report.files,
                "more ELF files than files"
            );
            let _ = report.render_text();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});

//! Fuzzes the ELF reader without its panic guard: any input must give
//! `Ok(None)`, `Ok(Some(facts))` or an error, never a panic, hang or OOM.
//! Seed it with real ELF files: `mkdir -p corpus/elf_reader && cp /bin/true
//! /lib/x86_64-linux-gnu/libz.so.1 corpus/elf_reader/`.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.so");
    let _ = hermetic::elf::reader::read_elf_unguarded(path, data);
    let _ = hermetic::elf::reader::glibc_version_unguarded(path, data);
});

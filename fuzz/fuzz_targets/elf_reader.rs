//! Fuzzes the ELF reader without its panic guard: any input must give
//! `Ok(None)`, `Ok(Some(facts))` or an error, never a panic, hang or OOM.
//! Seeds: `fuzz/seeds/elf_reader`, two small shared libraries made by
//! `scripts/fuzz-seeds`.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.so");
    let _ = hermetic::elf::reader::read_elf_unguarded(path, data);
    let _ = hermetic::elf::reader::glibc_version_unguarded(path, data);
});

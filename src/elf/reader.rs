//! Bytes -> [`ElfFacts`]: everything the audit and the repair planner need to
//! know about one ELF file, read with goblin and nothing else.
//!
//! The reader never touches the filesystem: callers hand it the bytes and the
//! path to report (relative to the tree root). Hostile input is expected, so
//! every parse failure is an [`ElfError::Malformed`] naming the file, and a
//! panic inside goblin is caught and reported the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use goblin::elf::{Elf, dynamic, header};
use serde::Serialize;

use super::ElfError;

/// The four bytes every ELF file starts with.
pub const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

/// `NT_GNU_PROPERTY_TYPE_0`: the note type carrying GNU program properties.
const NT_GNU_PROPERTY_TYPE_0: u32 = 5;
/// `GNU_PROPERTY_X86_ISA_1_NEEDED` (binutils >= 2.35 numbering: UINT32_OR_LO + 2).
const GNU_PROPERTY_X86_ISA_1_NEEDED: u32 = 0xc000_8002;

/// ELF word size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ElfClass {
    /// 32-bit (`ELFCLASS32`).
    Elf32,
    /// 64-bit (`ELFCLASS64`).
    Elf64,
}

/// What the dynamic loader sees in this file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ElfKind {
    /// `ET_EXEC`: a position-dependent executable.
    Exec,
    /// `ET_DYN` with `DF_1_PIE`: a position-independent executable.
    Pie,
    /// `ET_DYN` without `DF_1_PIE`: a shared library or extension module.
    Dyn,
    /// `ET_REL`: an object file; never loaded, so never audited.
    Rel,
    /// Anything else (core dumps, processor-specific types).
    Other,
}

/// One version the file needs from a library, with the symbols bound to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SymbolVersionRef {
    /// Version name, e.g. `GLIBC_2.34`.
    pub name: String,
    /// Undefined dynamic symbols whose versym points at this version, sorted.
    pub symbols: Vec<String>,
}

/// The versions a file needs from one library (one `Verneed` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionNeed {
    /// The library the versions are needed from, e.g. `libc.so.6`.
    pub library: String,
    /// Needed versions in file order.
    pub versions: Vec<SymbolVersionRef>,
}

/// Facts about one ELF file, as the dynamic loader would see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElfFacts {
    /// Path relative to the tree root, `/`-separated.
    pub path: String,
    /// Word size.
    pub class: ElfClass,
    /// Machine, e.g. `x86_64`, `i686`, `aarch64` (goblin's name, lowercased, otherwise).
    pub machine: String,
    /// Executable, shared object or other.
    pub kind: ElfKind,
    /// `PT_INTERP`, the program interpreter, when set.
    pub interpreter: Option<String>,
    /// `DT_NEEDED` entries in order.
    pub needed: Vec<String>,
    /// `DT_SONAME`.
    pub soname: Option<String>,
    /// `DT_RPATH` entries, split on `:`.
    pub rpath: Vec<String>,
    /// `DT_RUNPATH` entries, split on `:`.
    pub runpath: Vec<String>,
    /// `DT_VERNEED` with the undefined symbols behind each version (via `DT_VERSYM`).
    pub version_needs: Vec<VersionNeed>,
    /// Names of undefined dynamic symbols, sorted and deduplicated.
    pub undefined_symbols: Vec<String>,
    /// x86-64 ISA level from `GNU_PROPERTY_X86_ISA_1_NEEDED`:
    /// 1 = baseline, 2 = x86-64-v2, 3 = x86-64-v3, 4 = x86-64-v4.
    pub x86_isa_level: Option<u8>,
}

impl ElfFacts {
    /// Whether the file names a program interpreter (`PT_INTERP`).
    pub fn is_interpreter_set(&self) -> bool {
        self.interpreter.is_some()
    }

    /// Whether the dynamic loader maps this file (executables and shared objects).
    pub fn is_loadable(&self) -> bool {
        matches!(self.kind, ElfKind::Exec | ElfKind::Pie | ElfKind::Dyn)
    }

    /// The search path ld.so uses for this file's own `DT_NEEDED`: `DT_RUNPATH`
    /// when present (then `DT_RPATH` is ignored), otherwise `DT_RPATH`.
    pub fn search_entries(&self) -> &[String] {
        if self.runpath.is_empty() {
            &self.rpath
        } else {
            &self.runpath
        }
    }
}

/// Whether `bytes` start with the ELF magic.
pub fn has_elf_magic(bytes: &[u8]) -> bool {
    bytes.starts_with(ELF_MAGIC)
}

/// Reads the facts of one ELF file.
///
/// `path` is only used to name the file in facts and errors. Returns
/// `Ok(None)` when `bytes` do not start with the ELF magic (not an ELF file at
/// all; whether that is acceptable is the tree walker's call), and an error
/// naming the file when they do but the rest cannot be parsed.
pub fn read_elf(path: &Path, bytes: &[u8]) -> Result<Option<ElfFacts>, ElfError> {
    if !has_elf_magic(bytes) {
        return Ok(None);
    }
    // goblin is careful, but it parses hostile input with a lot of offset
    // arithmetic; a panic there must become an error naming the file, not
    // take down a parallel audit of thousands of files.
    match std::panic::catch_unwind(|| parse_facts(path, bytes)) {
        Ok(result) => result.map(Some),
        Err(_) => Err(malformed(path, "the ELF parser panicked on this file")),
    }
}

/// [`read_elf`] without the panic guard, so the fuzz target sees real panics.
#[doc(hidden)]
pub fn read_elf_unguarded(path: &Path, bytes: &[u8]) -> Result<Option<ElfFacts>, ElfError> {
    if !has_elf_magic(bytes) {
        return Ok(None);
    }
    parse_facts(path, bytes).map(Some)
}

/// The bytes of each section by name (`SHT_NOBITS` sections as empty), for
/// telling which parts of two builds of a file differ. `Ok(None)` when the
/// bytes are not ELF; an error naming the file when they are but do not
/// parse (or the parser panics).
pub fn sections(path: &Path, bytes: &[u8]) -> Result<Option<BTreeMap<String, Vec<u8>>>, ElfError> {
    if !has_elf_magic(bytes) {
        return Ok(None);
    }
    let parse = || -> Result<BTreeMap<String, Vec<u8>>, ElfError> {
        let elf = Elf::parse(bytes).map_err(|e| malformed(path, e))?;
        let mut map = BTreeMap::new();
        for sh in &elf.section_headers {
            let name = elf
                .shdr_strtab
                .get_at(sh.sh_name)
                .unwrap_or("?")
                .to_string();
            let data = if sh.sh_type == goblin::elf::section_header::SHT_NOBITS {
                Vec::new()
            } else {
                let start = sh.sh_offset as usize;
                bytes
                    .get(start..start.saturating_add(sh.sh_size as usize))
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default()
            };
            map.insert(name, data);
        }
        Ok(map)
    };
    match std::panic::catch_unwind(parse) {
        Ok(result) => result.map(Some),
        Err(_) => Err(malformed(path, "the ELF parser panicked on this file")),
    }
}

/// The glibc version a `libc.so.6` provides: the highest `GLIBC_2.x` among its
/// version *definitions* (`DT_VERDEF`). `path` names the file in errors.
pub fn glibc_version_of_libc(path: &Path, bytes: &[u8]) -> Result<(u32, u32), ElfError> {
    std::panic::catch_unwind(|| glibc_version_unguarded(path, bytes))
        .unwrap_or_else(|_| Err(malformed(path, "the ELF parser panicked on this file")))
}

/// The version in glibc's banner string (`release version 2.31.`).
fn release_banner_version(bytes: &[u8]) -> Option<(u32, u32)> {
    const NEEDLE: &[u8] = b"release version ";
    let start = bytes.windows(NEEDLE.len()).position(|w| w == NEEDLE)? + NEEDLE.len();
    let rest = &bytes[start..bytes.len().min(start + 16)];
    let end = rest
        .iter()
        .position(|b| !(b.is_ascii_digit() || *b == b'.'))
        .unwrap_or(rest.len());
    let text = std::str::from_utf8(&rest[..end])
        .ok()?
        .trim_end_matches('.');
    let mut parts = text.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// [`glibc_version_of_libc`] without the panic guard, for the fuzz target.
#[doc(hidden)]
pub fn glibc_version_unguarded(path: &Path, bytes: &[u8]) -> Result<(u32, u32), ElfError> {
    if !has_elf_magic(bytes) {
        return Err(ElfError::NotElf {
            path: path.to_path_buf(),
            reason: "no ELF magic".into(),
        });
    }
    let elf = Elf::parse(bytes).map_err(|e| malformed(path, e))?;
    let mut best: Option<(u32, u32)> = None;
    if let Some(verdef) = &elf.verdef {
        for def in verdef.iter() {
            // The first Verdaux of a Verdef is the version's own name; later
            // ones name its parents, which are definitions in their own right.
            for aux in def.iter().take(1) {
                let Some(name) = elf.dynstrtab.get_at(aux.vda_name) else {
                    continue;
                };
                if let Some(v) = parse_glibc_version(name) {
                    best = best.max(Some(v));
                }
            }
        }
    }
    // A release without new symbols defines no version of its own (2.31
    // defines nothing newer than GLIBC_2.30), so the banner glibc embeds,
    // "... release version 2.31.", is the better witness; the version
    // definitions stay the fallback and a floor.
    if let Some(release) = release_banner_version(bytes)
        && best.is_none_or(|b| release >= b)
    {
        return Ok(release);
    }
    best.ok_or_else(|| ElfError::NotGlibc {
        path: path.to_path_buf(),
    })
}

/// `GLIBC_2.34` -> `(2, 34)`; `GLIBC_2.2.5` -> `(2, 2)`; anything else -> `None`.
pub fn parse_glibc_version(name: &str) -> Option<(u32, u32)> {
    let rest = name.strip_prefix("GLIBC_")?;
    let mut parts = rest.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn malformed(path: &Path, reason: impl ToString) -> ElfError {
    ElfError::Malformed {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn parse_facts(path: &Path, bytes: &[u8]) -> Result<ElfFacts, ElfError> {
    let elf = Elf::parse(bytes).map_err(|e| malformed(path, e))?;
    let string = |offset: usize, what: &str| {
        elf.dynstrtab
            .get_at(offset)
            .map(str::to_owned)
            .ok_or_else(|| {
                malformed(
                    path,
                    format!("{what} name is outside the dynamic string table"),
                )
            })
    };

    let kind = match elf.header.e_type {
        header::ET_EXEC => ElfKind::Exec,
        header::ET_DYN => {
            let pie = elf
                .dynamic
                .as_ref()
                .is_some_and(|d| d.info.flags_1 & dynamic::DF_1_PIE != 0);
            if pie { ElfKind::Pie } else { ElfKind::Dyn }
        }
        header::ET_REL => ElfKind::Rel,
        header::ET_NONE => return Err(malformed(path, "ELF type is ET_NONE (no file type)")),
        _ => ElfKind::Other,
    };

    // Map version index (vna_other) -> (library, version name).
    let mut version_needs = Vec::new();
    let mut by_index: BTreeMap<u16, (usize, usize)> = BTreeMap::new();
    if let Some(verneed) = &elf.verneed {
        for need in verneed.iter() {
            let library = string(need.vn_file, "verneed file")?;
            let mut versions = Vec::new();
            for aux in need.iter() {
                let name = string(aux.vna_name, "verneed version")?;
                by_index.insert(aux.vna_other, (version_needs.len(), versions.len()));
                versions.push((name, BTreeSet::new()));
            }
            version_needs.push((library, versions));
        }
    }

    let mut undefined = BTreeSet::new();
    for (index, sym) in elf.dynsyms.iter().enumerate() {
        if sym.st_shndx != 0 || sym.st_name == 0 {
            continue;
        }
        let name = string(sym.st_name, "dynamic symbol")?;
        let version = elf
            .versym
            .as_ref()
            .and_then(|vs| vs.get_at(index))
            .map(|v| v.version());
        if let Some(&(need, ver)) = version.and_then(|v| by_index.get(&v)) {
            version_needs[need].1[ver].1.insert(name.clone());
        }
        undefined.insert(name);
    }

    let split = |entries: &[&str]| -> Vec<String> {
        entries
            .iter()
            .flat_map(|e| e.split(':'))
            .map(str::to_owned)
            .collect()
    };

    Ok(ElfFacts {
        path: path.to_string_lossy().into_owned(),
        class: if elf.is_64 {
            ElfClass::Elf64
        } else {
            ElfClass::Elf32
        },
        machine: machine_name(elf.header.e_machine),
        kind,
        interpreter: elf.interpreter.map(str::to_owned),
        needed: elf.libraries.iter().map(|s| (*s).to_owned()).collect(),
        soname: elf.soname.map(str::to_owned),
        rpath: split(&elf.rpaths),
        runpath: split(&elf.runpaths),
        version_needs: version_needs
            .into_iter()
            .map(|(library, versions)| VersionNeed {
                library,
                versions: versions
                    .into_iter()
                    .map(|(name, symbols)| SymbolVersionRef {
                        name,
                        symbols: symbols.into_iter().collect(),
                    })
                    .collect(),
            })
            .collect(),
        undefined_symbols: undefined.into_iter().collect(),
        x86_isa_level: x86_isa_level(&elf, bytes),
    })
}

fn machine_name(machine: u16) -> String {
    match machine {
        header::EM_X86_64 => "x86_64".into(),
        header::EM_386 => "i686".into(),
        header::EM_AARCH64 => "aarch64".into(),
        other => header::machine_to_str(other).to_ascii_lowercase(),
    }
}

/// Reads `GNU_PROPERTY_X86_ISA_1_NEEDED` from the GNU property note. A note
/// that cannot be parsed is treated as absent: the property is informational
/// and old toolchains wrote notes with other layouts.
fn x86_isa_level(elf: &Elf, bytes: &[u8]) -> Option<u8> {
    let align = if elf.is_64 { 8 } else { 4 };
    let read_u32 = |b: &[u8], at: usize| -> Option<u32> {
        let raw: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if elf.little_endian {
            u32::from_le_bytes(raw)
        } else {
            u32::from_be_bytes(raw)
        })
    };
    for note in elf.iter_note_headers(bytes)? {
        let Ok(note) = note else { continue };
        if note.n_type != NT_GNU_PROPERTY_TYPE_0 || note.name != "GNU" {
            continue;
        }
        let desc = note.desc;
        let mut at = 0usize;
        while at + 8 <= desc.len() {
            let pr_type = read_u32(desc, at)?;
            let size = read_u32(desc, at + 4)? as usize;
            if pr_type == GNU_PROPERTY_X86_ISA_1_NEEDED {
                let bits = read_u32(desc, at + 8)?;
                // Bit 0 is the baseline, bit 1 v2, bit 2 v3, bit 3 v4.
                return (0..4u8).rev().find(|b| bits & (1 << b) != 0).map(|b| b + 1);
            }
            let next = at.checked_add(8)?.checked_add(size)?;
            at = next.checked_add(align - 1)? / align * align;
        }
    }
    None
}

#[cfg(test)]
mod banner_tests {
    use super::release_banner_version;

    #[test]
    fn banner_versions_parse() {
        let b =
            b"xx GNU C Library (Debian GLIBC 2.31-13+deb11u11) stable release version 2.31.\n yy";
        assert_eq!(release_banner_version(b), Some((2, 31)));
        assert_eq!(
            release_banner_version(b"stable release version 2.28, by Roland"),
            Some((2, 28))
        );
        assert_eq!(release_banner_version(b"no banner"), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::testelf::SharedObject;

    #[test]
    fn non_elf_is_none() {
        assert_eq!(read_elf(Path::new("a.txt"), b"hello").unwrap(), None);
        assert_eq!(read_elf(Path::new("empty"), b"").unwrap(), None);
    }

    #[test]
    fn magic_only_is_an_error_naming_the_file() {
        let err = read_elf(Path::new("lib/x.so"), b"\x7fELF").unwrap_err();
        assert!(err.to_string().contains("lib/x.so"), "{err}");
    }

    #[test]
    fn reads_dynamic_entries_of_a_synthetic_library() {
        let bytes = SharedObject::new("libfoo.so.1")
            .needed(&["libbar.so.2", "libc.so.6"])
            .runpath("$ORIGIN:$ORIGIN/../lib")
            .build();
        let facts = read_elf(Path::new("lib/libfoo.so.1"), &bytes)
            .unwrap()
            .unwrap();
        assert_eq!(facts.kind, ElfKind::Dyn);
        assert_eq!(facts.class, ElfClass::Elf64);
        assert_eq!(facts.machine, "x86_64");
        assert_eq!(facts.soname.as_deref(), Some("libfoo.so.1"));
        assert_eq!(facts.needed, ["libbar.so.2", "libc.so.6"]);
        assert_eq!(facts.runpath, ["$ORIGIN", "$ORIGIN/../lib"]);
        assert!(facts.rpath.is_empty());
        assert_eq!(facts.search_entries(), facts.runpath.as_slice());
    }

    #[test]
    fn every_truncation_of_a_valid_file_is_ok_or_an_error() {
        let bytes = SharedObject::new("libfoo.so.1")
            .needed(&["libc.so.6"])
            .build();
        for len in 0..bytes.len() {
            let _ = read_elf(Path::new("t.so"), &bytes[..len]);
        }
    }

    #[test]
    fn glibc_version_names_parse() {
        assert_eq!(parse_glibc_version("GLIBC_2.34"), Some((2, 34)));
        assert_eq!(parse_glibc_version("GLIBC_2.2.5"), Some((2, 2)));
        assert_eq!(parse_glibc_version("GLIBC_PRIVATE"), None);
        assert_eq!(parse_glibc_version("GLIBCXX_3.4"), None);
    }
}

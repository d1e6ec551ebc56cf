//! A tiny ELF64 x86-64 shared-object writer for unit tests: just enough
//! structure (one `PT_LOAD`, one `PT_DYNAMIC`, a dynamic string table) for
//! goblin to read `DT_NEEDED`, `DT_SONAME`, `DT_RPATH` and `DT_RUNPATH`.
//! Unit tests use it so they need neither a compiler nor host libraries.

/// Builder for a synthetic shared object.
pub struct SharedObject {
    soname: String,
    needed: Vec<String>,
    rpath: Option<String>,
    runpath: Option<String>,
}

const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_SONAME: u64 = 14;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;

impl SharedObject {
    pub fn new(soname: &str) -> Self {
        SharedObject {
            soname: soname.into(),
            needed: Vec::new(),
            rpath: None,
            runpath: None,
        }
    }

    pub fn needed(mut self, libs: &[&str]) -> Self {
        self.needed.extend(libs.iter().map(|s| s.to_string()));
        self
    }

    pub fn rpath(mut self, rpath: &str) -> Self {
        self.rpath = Some(rpath.into());
        self
    }

    pub fn runpath(mut self, runpath: &str) -> Self {
        self.runpath = Some(runpath.into());
        self
    }

    pub fn build(&self) -> Vec<u8> {
        const EHDR: usize = 64;
        const PHDR: usize = 56;
        let strtab_off = EHDR + 2 * PHDR;

        let mut strtab = vec![0u8];
        let mut add = |s: &str| {
            let at = strtab.len() as u64;
            strtab.extend_from_slice(s.as_bytes());
            strtab.push(0);
            at
        };
        let mut dyns: Vec<(u64, u64)> = Vec::new();
        for lib in &self.needed {
            dyns.push((DT_NEEDED, add(lib)));
        }
        dyns.push((DT_SONAME, add(&self.soname)));
        if let Some(r) = &self.rpath {
            dyns.push((DT_RPATH, add(r)));
        }
        if let Some(r) = &self.runpath {
            dyns.push((DT_RUNPATH, add(r)));
        }
        dyns.push((DT_STRTAB, strtab_off as u64));
        dyns.push((DT_STRSZ, strtab.len() as u64));
        dyns.push((DT_NULL, 0));

        let dyn_off = (strtab_off + strtab.len()).div_ceil(8) * 8;
        let dyn_size = dyns.len() * 16;
        let total = dyn_off + dyn_size;

        let mut out = Vec::with_capacity(total);
        // e_ident: magic, ELFCLASS64, little endian, version 1, SysV ABI.
        out.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
        out.extend_from_slice(&3u16.to_le_bytes()); // e_type = ET_DYN
        out.extend_from_slice(&62u16.to_le_bytes()); // e_machine = EM_X86_64
        out.extend_from_slice(&1u32.to_le_bytes()); // e_version
        out.extend_from_slice(&0u64.to_le_bytes()); // e_entry
        out.extend_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
        out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
        out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        out.extend_from_slice(&(EHDR as u16).to_le_bytes()); // e_ehsize
        out.extend_from_slice(&(PHDR as u16).to_le_bytes()); // e_phentsize
        out.extend_from_slice(&2u16.to_le_bytes()); // e_phnum
        out.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
        out.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
        out.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx

        let mut phdr = |p_type: u32, flags: u32, off: usize, size: usize, align: u64| {
            out.extend_from_slice(&p_type.to_le_bytes());
            out.extend_from_slice(&flags.to_le_bytes());
            for v in [
                off as u64,
                off as u64,
                off as u64,
                size as u64,
                size as u64,
                align,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        };
        phdr(1, 4 | 2, 0, total, 0x1000); // PT_LOAD, RW
        phdr(2, 4 | 2, dyn_off, dyn_size, 8); // PT_DYNAMIC

        out.extend_from_slice(&strtab);
        out.resize(dyn_off, 0);
        for (tag, val) in dyns {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&val.to_le_bytes());
        }
        out
    }
}

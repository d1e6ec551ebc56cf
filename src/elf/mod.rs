//! ELF facts (goblin), manylinux policy tables, audit and repair planning.

/// Errors reading or auditing ELF files.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("{0}")]
    Other(String),
}

/// Temporary: replaced by the ELF reader.
pub mod reader {
    /// The glibc version a libc.so.6 defines.
    pub fn glibc_version_of_libc(_bytes: &[u8]) -> Result<(u32, u32), super::ElfError> {
        Err(super::ElfError::Other("not implemented".into()))
    }
}

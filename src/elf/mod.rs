//! ELF facts (goblin), manylinux policy tables, audit and repair planning.

/// Errors reading or auditing ELF files.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("{0}")]
    Other(String),
}

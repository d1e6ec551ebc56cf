//! Deterministic archives: every determinism rule lives here.

/// Errors writing or reading archives.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{0}")]
    Other(String),
}

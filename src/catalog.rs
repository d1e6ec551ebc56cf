//! Builder image catalog.

/// Errors about the builder image catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{0}")]
    Other(String),
}

impl CatalogError {
    /// A line the user can act on.
    pub fn help(&self) -> Option<String> {
        None
    }
}

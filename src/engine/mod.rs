//! The container engine layer: the only code that imports bollard.

/// Errors talking to the container engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Other(String),
}

impl EngineError {
    /// A line the user can act on.
    pub fn help(&self) -> Option<String> {
        None
    }
}

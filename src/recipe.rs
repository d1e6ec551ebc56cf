//! Recipes: parse and validate `hermetic.toml`.

/// Errors reading a recipe.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("{0}")]
    Other(String),
}

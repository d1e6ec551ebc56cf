//! Where hermetic keeps state on the host: the download cache, the builder
//! image lock file and container logs. Every location can be moved with
//! `HERMETIC_HOME` (tests use this to stay out of the user's home).

use std::path::PathBuf;

/// Root of hermetic's own state: `$HERMETIC_HOME`, else `$XDG_CACHE_HOME/hermetic`,
/// else `~/.cache/hermetic`.
pub fn home() -> PathBuf {
    if let Some(dir) = std::env::var_os("HERMETIC_HOME") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("hermetic");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache").join("hermetic"),
        None => std::env::temp_dir().join("hermetic"),
    }
}

/// Content-addressed download cache (`<home>/blobs/sha256/<hex>`).
pub fn blob_cache() -> PathBuf {
    home().join("blobs").join("sha256")
}

/// Directory that keeps one log file per container run.
pub fn log_dir() -> PathBuf {
    home().join("logs")
}

/// The lock file recording the image ID of each locally made image, one per
/// engine (`engine_key`, see `Engine::lock_key`): image IDs are engine-local,
/// so switching engines on one `$HERMETIC_HOME` must not find the other's.
pub fn image_lock(engine_key: &str) -> PathBuf {
    home().join(format!("images.lock.{engine_key}.json"))
}

//! Where hermetic keeps state on the host: the download cache, the builder
//! image lock file and container logs. Every location can be moved with
//! `HERMETIC_HOME` (tests use this to stay out of the user's home).

use std::path::{Path, PathBuf};

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

/// How many files [`fresh_log`] keeps in [`log_dir`], newest first.
pub const LOG_KEEP_FILES: usize = 200;

/// How many bytes of logs [`fresh_log`] keeps in [`log_dir`], newest
/// first (each log is capped at 64 MiB as it is written).
pub const LOG_KEEP_BYTES: u64 = 1 << 30;

/// The path of a new log `name` in [`log_dir`], rotated: an earlier log of
/// that name (an image build's, which has a fixed name) becomes
/// `<name>.1`, replacing the one before, and the oldest files beyond
/// [`LOG_KEEP_FILES`] or [`LOG_KEEP_BYTES`] are removed, so that the log
/// directory of a machine that builds every day stays bounded. Failures
/// are ignored: housekeeping of logs must never fail a build.
pub fn fresh_log(name: &str) -> PathBuf {
    let dir = log_dir();
    let path = dir.join(name);
    if path.exists() {
        let mut old = path.clone().into_os_string();
        old.push(".1");
        let _ = std::fs::rename(&path, old);
    }
    let _ = prune_logs(&dir, LOG_KEEP_FILES, LOG_KEEP_BYTES);
    path
}

/// Removes the oldest entries of `dir` that `pick` chooses (by
/// modification time) beyond the newest `keep` whose sizes add up to at
/// most `keep_bytes`: files, or whole directories. Returns how many it
/// removed. Logs and failed smoke tests' evidence are kept this way.
pub(crate) fn prune_oldest(
    dir: &Path,
    keep: usize,
    keep_bytes: u64,
    pick: impl Fn(&std::fs::DirEntry, &std::fs::Metadata) -> bool,
) -> std::io::Result<usize> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if pick(&entry, &meta) {
            let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            found.push((modified, meta.len(), meta.is_dir(), entry.path()));
        }
    }
    // Newest first; the name breaks ties so the order is stable.
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.3.cmp(&b.3)));
    let (mut kept, mut bytes, mut removed) = (0usize, 0u64, 0usize);
    for (_, len, is_dir, path) in found {
        if kept < keep && bytes.saturating_add(len) <= keep_bytes {
            kept += 1;
            bytes += len;
            continue;
        }
        let gone = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if gone.is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// [`prune_oldest`] for the log directory: its regular files.
fn prune_logs(dir: &Path, keep_files: usize, keep_bytes: u64) -> std::io::Result<usize> {
    prune_oldest(dir, keep_files, keep_bytes, |_, meta| meta.is_file())
}

/// The lock file recording the image ID of each locally made image, one per
/// engine (`engine_key`, see `Engine::lock_key`): image IDs are engine-local,
/// so switching engines on one `$HERMETIC_HOME` must not find the other's.
pub fn image_lock(engine_key: &str) -> PathBuf {
    home().join(format!("images.lock.{engine_key}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn log(dir: &Path, name: &str, len: usize, age_s: u64) {
        let path = dir.join(name);
        std::fs::write(&path, vec![b'x'; len]).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(age_s))
            .unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_oldest_logs_beyond_the_count_or_the_size_go() {
        let dir = tempfile::tempdir().unwrap();
        for (i, age) in [50, 40, 30, 20, 10].into_iter().enumerate() {
            log(dir.path(), &format!("b{i}.log"), 100, age);
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert_eq!(prune_logs(dir.path(), 3, 10_000).unwrap(), 2);
        assert_eq!(names(dir.path()), ["b2.log", "b3.log", "b4.log", "sub"]);
        // 250 bytes keep the two newest 100-byte logs.
        assert_eq!(prune_logs(dir.path(), 10, 250).unwrap(), 1);
        assert_eq!(names(dir.path()), ["b3.log", "b4.log", "sub"]);
    }
}

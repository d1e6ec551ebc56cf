//! The image locks (`$HERMETIC_HOME/images.lock.<engine>.json`, one per
//! engine): the exact image IDs of the builders and bases made on this
//! machine, with the inputs hash each was made from, so later builds use
//! exactly those images and notice when the catalog has moved on, and the
//! package versions inside each, so a remake cannot silently get others.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::BuilderError;

/// The lock file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Lock {
    /// Local builders, by baseline.
    #[serde(default)]
    pub builders: BTreeMap<String, LockedImage>,
    /// Runtime bases, by suite.
    #[serde(default)]
    pub bases: BTreeMap<String, LockedImage>,
    /// Upstream builders loaded from an archive (`hermetic images load`),
    /// by the pinned reference they were checked against: engines do not
    /// keep the registry digest of a loaded image.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub loaded: BTreeMap<String, LoadedImage>,
}

/// One upstream image loaded from an archive and checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedImage {
    /// Its image ID in the engine.
    pub image_id: String,
    /// The tag it was loaded under.
    pub tag: String,
    /// The archive it came from.
    pub archive: String,
    /// What matched the pin: `manifest sha256:…` or `image ID sha256:…`.
    pub checked: String,
}

/// One locally made image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedImage {
    /// The tag it was made under.
    pub tag: String,
    /// Its image ID.
    pub image_id: String,
    /// The catalog inputs hash it was made from.
    pub inputs_hash: String,
    /// Toolchain builders: the baseline their CPython and libraries were
    /// audited against when the image was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toolchain_glibc: Option<crate::glibc::Glibc>,
    /// The Debian packages inside it, name -> version: a remake from the
    /// same inputs that would get another version is refused, naming it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub packages: BTreeMap<String, String>,
}

impl Lock {
    /// Reads the lock file; a missing file is an empty lock.
    pub fn load(path: &Path) -> Result<Lock, BuilderError> {
        match fs_err::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| BuilderError::BadLock {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lock::default()),
            Err(e) => Err(BuilderError::Io(e)),
        }
    }

    /// Writes the lock file atomically.
    pub fn save(&self, path: &Path) -> Result<(), BuilderError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        fs_err::create_dir_all(dir)?;
        let mut text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        text.push('\n');
        let tmp = tempfile::NamedTempFile::new_in(dir)?;
        fs_err::write(tmp.path(), text)?;
        tmp.persist(path).map_err(|e| BuilderError::Io(e.error))?;
        Ok(())
    }

    /// Changes the lock with `change`, re-reading the file first.
    pub fn update(path: &Path, change: impl FnOnce(&mut Lock)) -> Result<(), BuilderError> {
        let mut lock = Lock::load(path)?;
        change(&mut lock);
        lock.save(path)
    }

    /// Records one image under `key` in the table `pick` chooses, re-reading
    /// the file first (another hermetic may have recorded something since).
    pub fn record(
        path: &Path,
        pick: impl FnOnce(&mut Lock) -> &mut BTreeMap<String, LockedImage>,
        key: String,
        image: LockedImage,
    ) -> Result<(), BuilderError> {
        Lock::update(path, |lock| {
            pick(lock).insert(key, image);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_round_trip_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("images.lock.json");
        assert!(Lock::load(&path).unwrap().builders.is_empty());
        let image = LockedImage {
            tag: "hermetic/builder:glibc2.31-x".into(),
            image_id: "sha256:aa".into(),
            inputs_hash: "bb".into(),
            toolchain_glibc: None,
            packages: BTreeMap::from([("libc6".into(), "2.31-13+deb11u11".into())]),
        };
        Lock::record(&path, |l| &mut l.builders, "2.31".into(), image.clone()).unwrap();
        Lock::record(&path, |l| &mut l.bases, "trixie".into(), image.clone()).unwrap();
        let lock = Lock::load(&path).unwrap();
        assert_eq!(lock.builders.get("2.31"), Some(&image));
        assert_eq!(lock.bases.get("trixie"), Some(&image));
        fs_err::write(&path, "{not json").unwrap();
        let err = Lock::load(&path).unwrap_err().to_string();
        assert!(err.contains("images.lock.json"), "{err}");
    }
}

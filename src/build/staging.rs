//! Staging directories: where a build puts its outputs before they pass
//! smoke and are renamed into `--out`.
//!
//! A staging directory is `--out/.hermetic-staging-<owner>-<random>`, the
//! owner being this process (pid and start time, see
//! [`crate::engine::owner_label`]). Its first file is [`INCOMPLETE`], so
//! that what a killed build leaves there never looks like a release, and a
//! marker file under `$HERMETIC_HOME/staging/` names its path and owner, so
//! that `hermetic gc` finds it after a `kill -9` (when nothing removed it):
//! [`gc`] removes the staging directories of owners that no longer run.

use std::path::{Path, PathBuf};

use crate::engine::{owner_is_alive, owner_label};

/// Prefix of every staging directory's name.
pub const PREFIX: &str = ".hermetic-staging-";

/// The file that marks a staging directory as not a release.
pub const INCOMPLETE: &str = "HERMETIC-INCOMPLETE";

/// A live staging directory: removed, with its marker, when dropped.
#[derive(Debug)]
pub struct Staging {
    dir: tempfile::TempDir,
    marker: PathBuf,
}

impl Staging {
    /// Makes a staging directory in `out` registered under `home`.
    pub fn create(out: &Path, home: &Path) -> std::io::Result<Staging> {
        let owner = owner_label();
        // The owner label's `:` are awkward in file names.
        let tag = owner.replace(':', "-");
        let registry = home.join("staging");
        fs_err::create_dir_all(&registry)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-", short_owner(&tag)))
            .tempdir_in(out)?;
        fs_err::write(
            dir.path().join(INCOMPLETE),
            "a hermetic build was writing here and did not finish; this is not a release\n",
        )?;
        let name = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let marker = registry.join(format!("{name}.marker"));
        let path = std::path::absolute(dir.path())?;
        fs_err::write(&marker, format!("{owner}\n{}\n", path.display()))?;
        Ok(Staging { dir, marker })
    }

    /// The staging directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.marker);
    }
}

/// The pid and start time of an owner tag (`boot-id-…-pid-start`): the
/// boot id makes names long and is in the marker anyway.
fn short_owner(tag: &str) -> String {
    let parts: Vec<&str> = tag.rsplitn(3, '-').collect();
    match parts.as_slice() {
        [start, pid, _] => format!("{pid}-{start}"),
        _ => tag.to_string(),
    }
}

/// Removes the staging directories registered under `home` whose owner no
/// longer runs (all of them with `all`), and their markers; returns the
/// directories removed. A marker naming something that is not a staging
/// directory (wrong name, no [`INCOMPLETE`] file) only loses its marker:
/// gc never deletes a directory on a marker's word alone.
pub fn gc(home: &Path, all: bool) -> std::io::Result<Vec<PathBuf>> {
    let registry = home.join("staging");
    let entries = match fs_err::read_dir(&registry) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let marker = entry?.path();
        if marker.extension().is_none_or(|e| e != "marker") {
            continue;
        }
        let Ok(text) = fs_err::read_to_string(&marker) else {
            continue;
        };
        let mut lines = text.lines();
        let (owner, dir) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
        if !all && owner_is_alive(owner) {
            continue;
        }
        let dir = PathBuf::from(dir);
        let is_staging = dir.is_absolute()
            && dir
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(PREFIX))
            && fs_err::symlink_metadata(&dir).is_ok_and(|m| m.is_dir())
            && dir.join(INCOMPLETE).is_file();
        if is_staging {
            fs_err::remove_dir_all(&dir)?;
            removed.push(dir);
        }
        fs_err::remove_file(&marker)?;
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staging_dir_is_marked_incomplete_and_registered_while_it_lives() {
        let home = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let staging = Staging::create(out.path(), home.path()).unwrap();
        let name = staging.path().file_name().unwrap().to_string_lossy();
        assert!(name.starts_with(PREFIX), "{name}");
        assert!(name.contains(&std::process::id().to_string()), "{name}");
        assert!(staging.path().join(INCOMPLETE).is_file());
        // Our own, live: gc keeps it.
        assert_eq!(gc(home.path(), false).unwrap(), Vec::<PathBuf>::new());
        assert!(staging.path().is_dir());
        let path = staging.path().to_path_buf();
        drop(staging);
        assert!(!path.exists());
        assert_eq!(
            fs_err::read_dir(home.path().join("staging"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn gc_removes_dead_owners_staging_and_nothing_a_marker_merely_names() {
        let home = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let registry = home.path().join("staging");
        fs_err::create_dir_all(&registry).unwrap();
        // A dead owner: our pid with another start time (the pid reused).
        let live = owner_label();
        let (rest, start) = live.rsplit_once(':').unwrap();
        let dead = format!("{rest}:{}", start.parse::<u64>().unwrap() + 1);
        let make = |name: &str, owner: &str, incomplete: bool| {
            let dir = out.path().join(name);
            fs_err::create_dir_all(&dir).unwrap();
            fs_err::write(dir.join("app.tar.gz"), b"complete-looking").unwrap();
            if incomplete {
                fs_err::write(dir.join(INCOMPLETE), b"").unwrap();
            }
            let marker = registry.join(format!("{name}.marker"));
            fs_err::write(&marker, format!("{owner}\n{}\n", dir.display())).unwrap();
            dir
        };
        let dead_dir = make(".hermetic-staging-1-2-abc", &dead, true);
        let live_dir = make(".hermetic-staging-3-4-def", &live, true);
        // Hostile markers: a directory that is not a staging dir, and one
        // without the incomplete file; neither is deleted.
        let precious = make("release", &dead, true);
        let unmarked = make(".hermetic-staging-5-6-ghi", &dead, false);
        fs_err::write(registry.join("junk.marker"), b"\xff\xfe").unwrap();
        let removed = gc(home.path(), false).unwrap();
        assert_eq!(removed, vec![dead_dir.clone()]);
        assert!(!dead_dir.exists());
        assert!(live_dir.join("app.tar.gz").is_file());
        assert!(precious.join("app.tar.gz").is_file());
        assert!(unmarked.join("app.tar.gz").is_file());
        // `all` removes the live one too.
        assert_eq!(gc(home.path(), true).unwrap(), vec![live_dir.clone()]);
    }
}

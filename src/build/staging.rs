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
//! A build's work trees under `$TMPDIR` (`hermetic-work-<owner>-…`) are
//! registered the same way.

use std::path::{Path, PathBuf};

use crate::engine::{owner_is_alive, owner_label};

/// Prefix of every staging directory's name.
pub const PREFIX: &str = ".hermetic-staging-";

/// Prefix of a build's work trees under `$TMPDIR` (the build context, the
/// unpacked bundle): registered like staging directories, so that the
/// gigabytes a killed build leaves there are collected by `hermetic gc`.
pub const WORK_PREFIX: &str = "hermetic-work-";

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
        Staging::create_as(out, PREFIX, home, true)
    }

    /// Makes a work tree under `$TMPDIR` registered under `home`: empty
    /// (a build context is hashed as it is), known by its name's prefix.
    pub fn work_tree(home: &Path) -> std::io::Result<Staging> {
        Staging::create_as(&std::env::temp_dir(), WORK_PREFIX, home, false)
    }

    fn create_as(parent: &Path, prefix: &str, home: &Path, mark: bool) -> std::io::Result<Staging> {
        let owner = owner_label();
        // The owner label's `:` are awkward in file names.
        let tag = owner.replace(':', "-");
        let registry = home.join("staging");
        fs_err::create_dir_all(&registry)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}{}-", short_owner(&tag)))
            .tempdir_in(parent)?;
        if mark {
            fs_err::write(
                dir.path().join(INCOMPLETE),
                "a hermetic build was writing here and did not finish; this is not a release\n",
            )?;
        }
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
/// directory (wrong name, no [`INCOMPLETE`] file) or a work tree (wrong
/// name, not directly in `$TMPDIR`) only loses its marker:
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
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let is_staging = dir.is_absolute()
            && fs_err::symlink_metadata(&dir).is_ok_and(|m| m.is_dir())
            && ((name.starts_with(PREFIX) && dir.join(INCOMPLETE).is_file())
                || (name.starts_with(WORK_PREFIX)
                    && dir.parent() == Some(std::env::temp_dir().as_path())));
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

    #[test]
    fn a_dead_owners_work_tree_in_tmpdir_is_collected_and_only_there() {
        let home = tempfile::tempdir().unwrap();
        let work = Staging::work_tree(home.path()).unwrap();
        let name = work.path().file_name().unwrap().to_string_lossy();
        assert!(name.starts_with(WORK_PREFIX), "{name}");
        assert_eq!(
            fs_err::read_dir(work.path()).unwrap().count(),
            0,
            "a work tree starts empty (a build context is hashed as it is)"
        );
        assert_eq!(gc(home.path(), false).unwrap(), Vec::<PathBuf>::new());
        // What `kill -9` leaves: the tree and its marker, owner gone.
        let path = work.path().to_path_buf();
        fs_err::write(path.join("bundle.tar"), b"gigabytes").unwrap();
        let marker = fs_err::read_dir(home.path().join("staging"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let text = fs_err::read_to_string(&marker).unwrap();
        let (owner, rest) = text.split_once('\n').unwrap();
        let (boot_pid, start) = owner.rsplit_once(':').unwrap();
        let dead = format!("{boot_pid}:{}", start.parse::<u64>().unwrap() + 1);
        std::mem::forget(work);
        fs_err::write(&marker, format!("{dead}\n{rest}")).unwrap();
        // A work-named directory elsewhere is not the marker's to delete.
        let elsewhere = tempfile::tempdir().unwrap();
        let decoy = elsewhere.path().join(format!("{WORK_PREFIX}1-2-x"));
        fs_err::create_dir_all(&decoy).unwrap();
        fs_err::write(
            home.path().join("staging/decoy.marker"),
            format!("{dead}\n{}\n", decoy.display()),
        )
        .unwrap();
        assert_eq!(gc(home.path(), false).unwrap(), vec![path.clone()]);
        assert!(!path.exists());
        assert!(decoy.is_dir());
    }
}

//! Splitting a bundle into image layers by how often their files change.
//!
//! The rule, on paths relative to the bundle top:
//!
//! - **runtime**: `python/runtime/**` except anything under a `site-packages`
//!   directory — the interpreter and stdlib, which change with the Python
//!   version only;
//! - **deps**: `python/runtime/**/site-packages/**` and `lib/**` (vendored
//!   libraries) — third-party code, which changes when the lock changes;
//! - **app**: everything else (launchers, `bin/`, `share/`, including
//!   `bundle.json` and the SBOM) **plus** the app's own distribution in
//!   site-packages: the files listed in the `RECORD` of the
//!   `<name>-<version>.dist-info` whose project name matches `bundle.json`'s
//!   `name` (PEP 503 normalised). A new app version therefore changes only
//!   this small layer.
//!
//! Each layer lists its files and the directories above them, under
//! `opt/<name>/`; directories that are empty in the bundle go with the layer
//! their own path belongs to. Empty layers are left out of the image.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::OciError;
use crate::archive::ArchiveEntry;
use crate::bundle::{LIB_DIR, RUNTIME_DIR};

/// Which part of the bundle a layer carries, in stacking order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerRole {
    /// The base rootfs (Debian minbase).
    Base,
    /// The Python runtime without site-packages.
    Runtime,
    /// Third-party packages and vendored libraries.
    Deps,
    /// Launchers, native programs, metadata and the app's own package.
    App,
}

impl LayerRole {
    /// The bundle layers, in stacking order.
    pub const BUNDLE: [LayerRole; 3] = [LayerRole::Runtime, LayerRole::Deps, LayerRole::App];

    /// The role's name: `base`, `runtime`, `deps` or `app`.
    pub fn as_str(self) -> &'static str {
        match self {
            LayerRole::Base => "base",
            LayerRole::Runtime => "runtime",
            LayerRole::Deps => "deps",
            LayerRole::App => "app",
        }
    }
}

/// Sorted archive entry lists, one per bundle layer.
pub type LayerEntries = BTreeMap<LayerRole, Vec<ArchiveEntry>>;

/// PEP 503 normalisation, with `_` as separator as dist-info names use it.
fn dist_name(name: &str) -> String {
    crate::recipe::normalize_project_name(name).replace('-', "_")
}

/// Bundle-relative paths of the app's own distribution (from its RECORD).
fn app_dist_files(root: &Path, name: &str) -> Result<BTreeSet<String>, OciError> {
    let mut out = BTreeSet::new();
    let want = dist_name(name);
    let runtime_lib = root.join(RUNTIME_DIR).join("lib");
    let Ok(pythons) = fs_err::read_dir(&runtime_lib) else {
        return Ok(out);
    };
    for py in pythons.flatten() {
        let site = py.path().join("site-packages");
        let Ok(items) = fs_err::read_dir(&site) else {
            continue;
        };
        for item in items.flatten() {
            let fname = item.file_name().to_string_lossy().into_owned();
            let Some(stem) = fname.strip_suffix(".dist-info") else {
                continue;
            };
            let project = stem.split('-').next().unwrap_or_default();
            if dist_name(project) != want {
                continue;
            }
            let record = item.path().join("RECORD");
            let text = fs_err::read_to_string(&record).map_err(OciError::io(&record))?;
            let site_rel = site
                .strip_prefix(root)
                .unwrap_or(&site)
                .to_string_lossy()
                .into_owned();
            for line in text.lines() {
                let Some(path) = line.split(',').next().filter(|p| !p.is_empty()) else {
                    continue;
                };
                // Entries outside site-packages (scripts in ../../bin) are
                // classified by their own path.
                if path.starts_with("..") || path.starts_with('/') {
                    continue;
                }
                out.insert(format!("{site_rel}/{path}"));
            }
            out.insert(format!("{site_rel}/{fname}/RECORD"));
        }
    }
    Ok(out)
}

fn classify(rel: &str, app_files: &BTreeSet<String>) -> LayerRole {
    if app_files.contains(rel) {
        return LayerRole::App;
    }
    let in_dir = |dir: &str| rel == dir || rel.starts_with(&format!("{dir}/"));
    if in_dir(RUNTIME_DIR) {
        if rel.split('/').any(|c| c == "site-packages") {
            LayerRole::Deps
        } else {
            LayerRole::Runtime
        }
    } else if in_dir(LIB_DIR) {
        LayerRole::Deps
    } else {
        LayerRole::App
    }
}

/// Splits the bundle at `root` (named `name`) into layer entry lists whose
/// archive paths are under `opt/<name>/`.
pub fn split(root: &Path, name: &str) -> Result<LayerEntries, OciError> {
    let app_files = app_dist_files(root, name)?;
    let prefix = format!("opt/{name}");
    let mut files: BTreeMap<LayerRole, Vec<(String, PathBuf)>> = BTreeMap::new();
    let mut dirs: BTreeMap<LayerRole, BTreeSet<String>> = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let entry = entry.map_err(|e| OciError::Io {
            path: e
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| root.into()),
            source: e.into(),
        })?;
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap_or(entry.path())
            .to_string_lossy()
            .into_owned();
        let role = classify(&rel, &app_files);
        if entry.file_type().is_dir() {
            let empty = fs_err::read_dir(entry.path())
                .map_err(OciError::io(entry.path()))?
                .next()
                .is_none();
            if empty {
                dirs.entry(role).or_default().insert(rel);
            }
            continue;
        }
        // Every ancestor directory goes with the file.
        let set = dirs.entry(role).or_default();
        let mut parent = Path::new(&rel).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            set.insert(p.to_string_lossy().into_owned());
            parent = p.parent();
        }
        files
            .entry(role)
            .or_default()
            .push((format!("{prefix}/{rel}"), entry.path().to_path_buf()));
    }
    let mut out = LayerEntries::new();
    for role in LayerRole::BUNDLE {
        let layer_files = files.remove(&role).unwrap_or_default();
        let layer_dirs = dirs.remove(&role).unwrap_or_default();
        if layer_files.is_empty() && layer_dirs.is_empty() {
            continue;
        }
        let mut entries = vec![
            ("opt".to_string(), root.to_path_buf()),
            (prefix.clone(), root.to_path_buf()),
        ];
        entries.extend(
            layer_dirs
                .into_iter()
                .map(|d| (format!("{prefix}/{d}"), root.join(&d))),
        );
        entries.extend(layer_files);
        entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        entries.dedup_by(|a, b| a.0 == b.0);
        let entries = entries
            .into_iter()
            .map(|(archive_path, source)| ArchiveEntry {
                archive_path,
                source,
            })
            .collect();
        out.insert(role, entries);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_rule() {
        let app: BTreeSet<String> =
            ["python/runtime/lib/python3.11/site-packages/myapp/__init__.py".to_string()].into();
        let c = |p: &str| classify(p, &app);
        assert_eq!(c("python/runtime/bin/python3.11"), LayerRole::Runtime);
        assert_eq!(c("python/runtime/lib/python3.11/os.py"), LayerRole::Runtime);
        assert_eq!(
            c("python/runtime/lib/python3.11/site-packages/yaml/__init__.py"),
            LayerRole::Deps
        );
        assert_eq!(
            c("python/runtime/lib/python3.11/site-packages/myapp/__init__.py"),
            LayerRole::App
        );
        assert_eq!(c("lib/libyaml-0-1a2b3c4d.so.2"), LayerRole::Deps);
        assert_eq!(c("libexec"), LayerRole::App);
        assert_eq!(c("myapp"), LayerRole::App);
        assert_eq!(c("bin/tool"), LayerRole::App);
        assert_eq!(c("share/hermetic/bundle.json"), LayerRole::App);
    }

    #[test]
    fn dist_names_normalise() {
        assert_eq!(dist_name("My.App-Name"), "my_app_name");
        assert_eq!(dist_name("my__app"), "my_app");
    }

    #[test]
    fn split_puts_the_app_dist_in_the_app_layer() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let site = root.join("python/runtime/lib/python3.11/site-packages");
        fs_err::create_dir_all(site.join("my_app-1.0.dist-info")).unwrap();
        fs_err::create_dir_all(site.join("my_app")).unwrap();
        fs_err::create_dir_all(site.join("yaml")).unwrap();
        fs_err::create_dir_all(root.join("python/runtime/bin")).unwrap();
        fs_err::create_dir_all(root.join("empty")).unwrap();
        fs_err::write(root.join("python/runtime/bin/python3"), b"py").unwrap();
        fs_err::write(site.join("my_app/__init__.py"), b"").unwrap();
        fs_err::write(site.join("yaml/__init__.py"), b"").unwrap();
        fs_err::write(
            site.join("my_app-1.0.dist-info/RECORD"),
            "my_app/__init__.py,sha256=x,0\nmy_app-1.0.dist-info/RECORD,,\n../../../bin/my-app,sha256=y,1\n",
        )
        .unwrap();
        fs_err::write(root.join("my-app"), b"#!/bin/sh\n").unwrap();
        let layers = split(root, "my-app").unwrap();
        let names = |r: LayerRole| -> Vec<String> {
            layers[&r].iter().map(|e| e.archive_path.clone()).collect()
        };
        let app = names(LayerRole::App);
        assert!(app.contains(&"opt/my-app/my-app".to_string()));
        assert!(app.contains(&"opt/my-app/empty".to_string()));
        assert!(
            app.contains(
                &"opt/my-app/python/runtime/lib/python3.11/site-packages/my_app/__init__.py"
                    .to_string()
            )
        );
        let deps = names(LayerRole::Deps);
        assert!(
            deps.iter()
                .any(|p| p.ends_with("site-packages/yaml/__init__.py"))
        );
        assert!(!deps.iter().any(|p| p.contains("my_app")));
        let runtime = names(LayerRole::Runtime);
        assert_eq!(runtime[0], "opt");
        assert!(runtime.contains(&"opt/my-app/python/runtime/bin/python3".to_string()));
        let mut sorted = runtime.clone();
        sorted.sort();
        assert_eq!(sorted, runtime);
    }
}

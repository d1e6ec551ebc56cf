//! Reproducible builder and base images, assembled the way apko assembles
//! images rather than as an engine build leaves them: the layers an engine
//! made (or a rootfs tarball) are merged into one filesystem, whiteouts
//! resolved, and written as a single layer by the rules of
//! [`crate::archive::FsLayerWriter`]; the config keeps only what a
//! container run needs (Env, Cmd, Entrypoint, WorkingDir, User, hermetic's
//! own labels) with `created` at the catalog's epoch and no history times.
//! The image ID, the digest of that config, then depends on the files alone,
//! so the same catalog inputs give the same ID on any machine and on Docker
//! or Podman.
//!
//! Data flow: `docker save` tarball (or rootfs tarball) on the host ->
//! [`read_saved`] finds the config and each layer's byte range in it (no
//! extraction: the tars are uncompressed) -> [`flatten`] reads the layers in
//! order into a sorted map of paths to byte ranges -> one layer file plus
//! the package versions from `var/lib/dpkg/status` -> [`image_config`] ->
//! a docker-archive ([`crate::oci::docker_archive`]) the engine loads.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::BuilderError;
use crate::archive::{FsEntry, FsKind, FsLayerWriter};

/// One layer tar: `size` bytes at `offset` in `file`.
#[derive(Debug, Clone)]
pub struct LayerSource {
    /// The file the layer is inside of (a saved image or a rootfs tarball).
    pub file: PathBuf,
    /// Where its tar starts.
    pub offset: u64,
    /// How long it is.
    pub size: u64,
    /// What to call it in errors.
    pub name: String,
}

impl LayerSource {
    /// A whole tar file as one layer.
    pub fn whole(file: &Path) -> Result<LayerSource, BuilderError> {
        Ok(LayerSource {
            file: file.to_path_buf(),
            offset: 0,
            size: fs_err::metadata(file)?.len(),
            name: file.display().to_string(),
        })
    }
}

/// What an image saved by the engine consists of.
#[derive(Debug)]
pub struct SavedImage {
    /// Its config document.
    pub config: Value,
    /// Its layers, bottom first.
    pub layers: Vec<LayerSource>,
}

/// The flattened layer that was written.
#[derive(Debug, Clone)]
pub struct Flattened {
    /// `sha256:<hex>` of the layer (uncompressed: also its diff_id).
    pub diff_id: String,
    /// Its size in bytes.
    pub size: u64,
    /// Installed Debian packages, name -> version (empty without dpkg).
    pub packages: BTreeMap<String, String>,
}

fn bad(image: &str, reason: impl Into<String>) -> BuilderError {
    BuilderError::Flatten {
        image: image.to_string(),
        reason: reason.into(),
    }
}

/// Reads a docker-archive (what `GET /images/{name}/get` streams, from
/// Docker or Podman): the config and the byte range of each layer.
pub fn read_saved(path: &Path, image: &str) -> Result<SavedImage, BuilderError> {
    enum Item {
        Data(u64, u64),
        Link(String),
    }
    let file = fs_err::File::open(path)?;
    let mut archive = tar::Archive::new(BufReader::new(file));
    let mut items: HashMap<String, Item> = HashMap::new();
    let mut small: HashMap<String, Vec<u8>> = HashMap::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = normalize(&String::from_utf8_lossy(&entry.path_bytes()));
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(&t).to_string())
                .unwrap_or_default();
            let target = if kind.is_symlink() {
                join_relative(parent_of(&name), &target)
            } else {
                normalize(&target)
            };
            items.insert(name, Item::Link(target));
        } else if kind.is_file() {
            let size = entry.size();
            items.insert(name.clone(), Item::Data(entry.raw_file_position(), size));
            if name.ends_with(".json") && size < 16 << 20 {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes)?;
                small.insert(name, bytes);
            }
        }
    }
    let resolve = |name: &str| -> Result<(u64, u64, String), BuilderError> {
        let mut current = normalize(name);
        for _ in 0..8 {
            match items.get(&current) {
                Some(Item::Data(offset, size)) => return Ok((*offset, *size, current)),
                Some(Item::Link(target)) => current = target.clone(),
                None => break,
            }
        }
        Err(bad(image, format!("the saved image has no file {name}")))
    };
    let manifest: Value = serde_json::from_slice(
        small
            .get("manifest.json")
            .ok_or_else(|| bad(image, "the saved image has no manifest.json"))?,
    )
    .map_err(|e| bad(image, format!("manifest.json: {e}")))?;
    let first = manifest
        .get(0)
        .ok_or_else(|| bad(image, "manifest.json lists no image"))?;
    let config_name = first
        .get("Config")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(image, "manifest.json names no Config"))?;
    let (_, _, config_name) = resolve(config_name)?;
    let config: Value = serde_json::from_slice(
        small
            .get(&config_name)
            .ok_or_else(|| bad(image, format!("config {config_name} unreadable")))?,
    )
    .map_err(|e| bad(image, format!("config {config_name}: {e}")))?;
    let mut layers = Vec::new();
    for layer in first
        .get("Layers")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(image, "manifest.json names no Layers"))?
    {
        let name = layer
            .as_str()
            .ok_or_else(|| bad(image, "a layer name in manifest.json is not a string"))?;
        let (offset, size, _) = resolve(name)?;
        layers.push(LayerSource {
            file: path.to_path_buf(),
            offset,
            size,
            name: format!("{image} layer {name}"),
        });
    }
    Ok(SavedImage { config, layers })
}

/// One path of the merged filesystem and where its bytes are.
#[derive(Debug, Clone)]
struct Node {
    entry: FsEntry,
    /// Regular files: index into the sources, and the absolute offset.
    data: Option<(usize, u64)>,
}

/// Files an engine puts in a container for its own mounts (`/etc/hosts`,
/// `/etc/hostname`, `/etc/resolv.conf`, `/run/.containerenv`,
/// `/.dockerenv`): Podman's builds leave them in the image as empty files,
/// Docker's do not, so an empty one is not part of the image.
const ENGINE_MOUNT_POINTS: &[&str] = &[
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "run/.containerenv",
    ".dockerenv",
];

/// Merges `layers` (bottom first) into one filesystem, as an overlay
/// mount would show it, and writes it to `out` as one layer whose file
/// mtimes are clamped to `epoch` and whose directories all have `epoch` as
/// their mtime: a directory's time says when the engine's storage last
/// wrote into it (Docker and Podman differ: copy-up, package unpacking
/// order), files' times come from the packages and sources.
pub fn flatten(
    layers: &[LayerSource],
    epoch: u64,
    out: &Path,
    image: &str,
) -> Result<Flattened, BuilderError> {
    let mut tree: BTreeMap<String, Node> = BTreeMap::new();
    for (index, layer) in layers.iter().enumerate() {
        apply_layer(&mut tree, index, layer)?;
    }
    let mut files: HashMap<usize, fs_err::File> = HashMap::new();
    let output = fs_err::File::create(out)?;
    let mut writer = FsLayerWriter::new(std::io::BufWriter::with_capacity(1 << 20, output), epoch);
    let mut status = None;
    for (path, node) in &tree {
        if ENGINE_MOUNT_POINTS.contains(&path.as_str())
            && matches!(node.entry.kind, FsKind::File(0))
        {
            continue;
        }
        if matches!(node.entry.kind, FsKind::Dir) {
            let entry = FsEntry {
                mtime: epoch,
                ..node.entry.clone()
            };
            writer.append(&entry, std::io::empty())?;
            continue;
        }
        match (&node.entry.kind, node.data) {
            (FsKind::File(size), Some((index, offset))) => {
                let file = match files.entry(index) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(fs_err::File::open(&layers[index].file)?)
                    }
                };
                file.seek(SeekFrom::Start(offset))?;
                let mut reader = BufReader::with_capacity(256 * 1024, &mut *file).take(*size);
                if path == "var/lib/dpkg/status" {
                    let mut bytes = Vec::new();
                    reader.read_to_end(&mut bytes)?;
                    writer.append(&node.entry, bytes.as_slice())?;
                    status = Some(bytes);
                } else {
                    writer.append(&node.entry, reader)?;
                }
            }
            _ => writer.append(&node.entry, std::io::empty())?,
        }
    }
    let (_, sha256, size) = writer.finish()?;
    let packages = status
        .map(|s| dpkg_status_packages(&String::from_utf8_lossy(&s)))
        .unwrap_or_default();
    if tree.is_empty() {
        return Err(bad(image, "its layers hold no files"));
    }
    Ok(Flattened {
        diff_id: format!("sha256:{sha256}"),
        size,
        packages,
    })
}

/// Applies one layer to the tree: its whiteouts first (they hide only what
/// lower layers had), then its entries in order, so a hard link finds a
/// target earlier in the same layer.
fn apply_layer(
    tree: &mut BTreeMap<String, Node>,
    index: usize,
    layer: &LayerSource,
) -> Result<(), BuilderError> {
    let mut file = fs_err::File::open(&layer.file)?;
    file.seek(SeekFrom::Start(layer.offset))?;
    let mut magic = [0u8; 2];
    let got = file.read(&mut magic)?;
    if got == 2 && magic == [0x1f, 0x8b] {
        return Err(bad(
            &layer.name,
            "the layer is gzip-compressed; expected a plain tar",
        ));
    }
    file.seek(SeekFrom::Start(layer.offset))?;
    let mut archive = tar::Archive::new(BufReader::new(file).take(layer.size));
    let mut entries = Vec::new();
    let mut whiteouts = Vec::new();
    let mut opaque = Vec::new();
    for entry in archive.entries()? {
        let entry = entry?;
        let raw = entry.path_bytes();
        let path = normalize(std::str::from_utf8(&raw).map_err(|_| {
            bad(
                &layer.name,
                format!("non-UTF-8 path {}", String::from_utf8_lossy(&raw)),
            )
        })?);
        if path.is_empty() {
            continue;
        }
        let (parent, name) = match path.rsplit_once('/') {
            Some((p, n)) => (p.to_string(), n),
            None => (String::new(), path.as_str()),
        };
        if name == ".wh..wh..opq" {
            opaque.push(parent);
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            whiteouts.push(join(&parent, hidden));
            continue;
        }
        let h = entry.header();
        let mode = h.mode()?;
        let uid = h.uid()?;
        let gid = h.gid()?;
        let mtime = h.mtime()?;
        let link = || {
            entry
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(&t).to_string())
                .unwrap_or_default()
        };
        let device = || -> Result<(u32, u32), BuilderError> {
            Ok((
                h.device_major()?.unwrap_or(0),
                h.device_minor()?.unwrap_or(0),
            ))
        };
        let t = h.entry_type();
        let (kind, data, hard) = if t.is_dir() {
            (FsKind::Dir, None, None)
        } else if t.is_file() || t == tar::EntryType::Continuous {
            (
                FsKind::File(entry.size()),
                Some(layer.offset + entry.raw_file_position()),
                None,
            )
        } else if t.is_symlink() {
            (FsKind::Symlink(link()), None, None)
        } else if t.is_hard_link() {
            (FsKind::File(0), None, Some(normalize(&link())))
        } else if t.is_character_special() {
            let (a, b) = device()?;
            (FsKind::Char(a, b), None, None)
        } else if t.is_block_special() {
            let (a, b) = device()?;
            (FsKind::Block(a, b), None, None)
        } else if t.is_fifo() {
            (FsKind::Fifo, None, None)
        } else {
            // PAX and GNU long-name records are consumed by the tar crate;
            // anything else (sockets cannot be in a tar) is not a file.
            continue;
        };
        entries.push((
            Node {
                entry: FsEntry {
                    path: path.clone(),
                    kind,
                    mode,
                    uid,
                    gid,
                    mtime,
                },
                data: data.map(|offset| (index, offset)),
            },
            hard,
        ));
    }
    for dir in opaque {
        remove_below(tree, &dir);
    }
    for path in whiteouts {
        tree.remove(&path);
        remove_below(tree, &path);
    }
    for (mut node, hard) in entries {
        if let Some(target) = hard {
            // A hard link is stored as a copy of its target's bytes (see
            // the archive rules): the output does not depend on inodes.
            let found = tree.get(&target).ok_or_else(|| {
                bad(
                    &layer.name,
                    format!("hard link {} to missing {target}", node.entry.path),
                )
            })?;
            node.entry.kind = found.entry.kind.clone();
            node.data = found.data;
        }
        let replaces_dir = tree
            .get(&node.entry.path)
            .is_some_and(|old| old.entry.kind == FsKind::Dir);
        if replaces_dir && node.entry.kind != FsKind::Dir {
            remove_below(tree, &node.entry.path);
        }
        tree.insert(node.entry.path.clone(), node);
    }
    Ok(())
}

/// Removes everything under `dir` (not `dir` itself).
fn remove_below(tree: &mut BTreeMap<String, Node>, dir: &str) {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let doomed: Vec<String> = tree
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        tree.remove(&k);
    }
}

/// `./a/b/` -> `a/b`.
fn normalize(path: &str) -> String {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

fn join_relative(dir: &str, target: &str) -> String {
    if target.starts_with('/') {
        normalize(target)
    } else {
        normalize(&join(dir, target))
    }
}

/// Installed packages (`Status: install ok installed`) of a dpkg status file.
pub fn dpkg_status_packages(status: &str) -> BTreeMap<String, String> {
    let mut packages = BTreeMap::new();
    for paragraph in status.split("\n\n") {
        let field = |name: &str| {
            paragraph
                .lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
                .map(str::trim)
        };
        if let (Some(name), Some(version), Some(state)) =
            (field("Package"), field("Version"), field("Status"))
            && state.ends_with(" installed")
        {
            packages.insert(name.to_string(), version.to_string());
        }
    }
    packages
}

/// What a flattened image's config keeps of its run settings.
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    /// `Env`: the `NAME=value` environment entries.
    pub env: Vec<String>,
    /// `Cmd`: the default command or arguments.
    pub cmd: Vec<String>,
    /// `Entrypoint`: the program the command runs under.
    pub entrypoint: Vec<String>,
    /// `WorkingDir`; empty for none.
    pub working_dir: String,
    /// `User`; empty for the image default.
    pub user: String,
    /// Only `io.hermetic.*` labels: engines add their own (buildah's
    /// `io.buildah.version`), which would make the ID differ per engine.
    pub labels: BTreeMap<String, String>,
}

impl RunConfig {
    /// The run settings of an engine's image config (`config` object).
    pub fn from_engine(config: &Value) -> RunConfig {
        let c = config.get("config").or_else(|| config.get("Config"));
        let strings = |key: &str| -> Vec<String> {
            c.and_then(|c| c.get(key))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let string = |key: &str| {
            c.and_then(|c| c.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let labels = c
            .and_then(|c| c.get("Labels"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.starts_with("io.hermetic."))
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        RunConfig {
            env: strings("Env"),
            cmd: strings("Cmd"),
            entrypoint: strings("Entrypoint"),
            working_dir: string("WorkingDir"),
            user: string("User"),
            labels,
        }
    }
}

/// The config document of a flattened image: canonical JSON, `created` at
/// `epoch`, one history entry without a time.
pub fn image_config(
    run: &RunConfig,
    diff_id: &str,
    epoch: u64,
    made_by: &str,
) -> Result<Vec<u8>, BuilderError> {
    let mut config = serde_json::Map::new();
    let mut put = |key: &str, value: Value, empty: bool| {
        if !empty {
            config.insert(key.to_string(), value);
        }
    };
    put("Env", json!(run.env), run.env.is_empty());
    put("Cmd", json!(run.cmd), run.cmd.is_empty());
    put(
        "Entrypoint",
        json!(run.entrypoint),
        run.entrypoint.is_empty(),
    );
    put(
        "WorkingDir",
        json!(run.working_dir),
        run.working_dir.is_empty(),
    );
    put("User", json!(run.user), run.user.is_empty());
    put("Labels", json!(run.labels), run.labels.is_empty());
    let doc = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": crate::oci::build::rfc3339(epoch),
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": made_by}],
    });
    crate::json::canonical_compact("the image config", &doc)
        .map_err(|e| bad(made_by, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(dir: &Path, name: &str, entries: &[(&str, &[u8], u64)]) -> LayerSource {
        let path = dir.join(name);
        let mut b = tar::Builder::new(fs_err::File::create(&path).unwrap());
        for (p, data, mtime) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_mtime(*mtime);
            h.set_uid(1000);
            h.set_gid(0);
            if p.ends_with('/') {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
            } else {
                h.set_mode(0o4755);
                h.set_size(data.len() as u64);
            }
            h.set_cksum();
            b.append_data(&mut h, p, *data).unwrap();
        }
        b.finish().unwrap();
        LayerSource::whole(&path).unwrap()
    }

    fn listing(path: &Path) -> Vec<(String, u64, u32, u64, Vec<u8>)> {
        let mut a = tar::Archive::new(fs_err::File::open(path).unwrap());
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mtime().unwrap(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    data,
                )
            })
            .collect()
    }

    #[test]
    fn layers_merge_with_whiteouts_sorted_and_clamped() {
        let dir = tempfile::tempdir().unwrap();
        let status = b"Package: a\nStatus: install ok installed\nVersion: 1.0\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 2\n";
        let lower = layer(
            dir.path(),
            "l1.tar",
            &[
                ("./etc/", b"", 5),
                ("./etc/old", b"x", 5),
                ("./etc/resolv.conf", b"nameserver 10.0.0.1\n", 5),
                ("./opt/", b"", 5),
                ("./opt/keep", b"k", 5),
                ("./var/lib/dpkg/status", status, 5),
            ],
        );
        let upper = layer(
            dir.path(),
            "l2.tar",
            &[
                ("etc/.wh.old", b"", 9),
                ("opt/.wh..wh..opq", b"", 9),
                ("opt/new", b"n", 2_000_000_000),
                ("bin/tool", b"t", 2_000_000_000),
                // Podman's build leaves its mount point as an empty file.
                ("etc/hosts", b"", 9),
            ],
        );
        let out = dir.path().join("out.tar");
        let f = flatten(&[lower.clone(), upper.clone()], 1_700_000_000, &out, "t").unwrap();
        let got = listing(&out);
        let names: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin/tool",
                "etc",
                "etc/resolv.conf",
                "opt",
                "opt/new",
                "var/lib/dpkg/status"
            ],
            "an empty engine mount point is dropped, a real file kept"
        );
        let tool = &got[0];
        assert_eq!(
            (tool.1, tool.2, tool.3, tool.4.as_slice()),
            (1_700_000_000, 0o4755, 1000, b"t".as_slice())
        );
        assert_eq!(got[1].1, 1_700_000_000, "directories get the epoch");
        assert_eq!(got[2].1, 5, "older file mtimes are kept");
        assert_eq!(
            f.packages,
            BTreeMap::from([("a".to_string(), "1.0".to_string())])
        );
        // Same inputs, same bytes.
        let again = dir.path().join("again.tar");
        let g = flatten(&[lower, upper], 1_700_000_000, &again, "t").unwrap();
        assert_eq!(f.diff_id, g.diff_id);
    }

    #[test]
    fn a_saved_image_is_read_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let l = layer(dir.path(), "layer.tar", &[("a", b"A", 1)]);
        let saved = dir.path().join("saved.tar");
        let mut b = tar::Builder::new(fs_err::File::create(&saved).unwrap());
        let manifest = br#"[{"Config":"c.json","Layers":["x/layer.tar"]}]"#;
        let config = br#"{"config":{"Env":["A=1"],"Labels":{"io.hermetic.k":"v","io.buildah.version":"1"}}}"#;
        for (name, data) in [
            ("manifest.json", manifest.to_vec()),
            ("c.json", config.to_vec()),
            ("x/layer.tar", fs_err::read(&l.file).unwrap()),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, data.as_slice()).unwrap();
        }
        b.finish().unwrap();
        drop(b);
        let s = read_saved(&saved, "img").unwrap();
        let run = RunConfig::from_engine(&s.config);
        assert_eq!(run.env, ["A=1"]);
        assert_eq!(run.labels.keys().collect::<Vec<_>>(), ["io.hermetic.k"]);
        let out = dir.path().join("out.tar");
        flatten(&s.layers, 10, &out, "img").unwrap();
        assert_eq!(listing(&out)[0].4, b"A");
        let a = image_config(&run, "sha256:00", 10, "x").unwrap();
        assert_eq!(a, image_config(&run, "sha256:00", 10, "x").unwrap());
        assert!(!String::from_utf8_lossy(&a).contains("buildah"));
    }
}

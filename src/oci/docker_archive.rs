//! `--load`: the staged OCI layout rewritten as a docker-archive (the format
//! `docker save` writes and `POST /images/load` reads on Docker 20.10, which
//! does not load OCI layouts): `manifest.json` naming the config and the
//! layer files, plus those files. Layers are the very same gzip blobs (the
//! engine decompresses them), and the config is byte-identical, so the
//! engine's image ID equals the config digest of the OCI image.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::layout::{Layout, blob_path};
use super::{OciError, build::image_descriptor};
use crate::archive::{self, ArchiveEntry, ArchiveOptions, Compression};
use crate::engine::Engine;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SaveManifest {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// Writes the docker-archive of the layout's image to `out` and returns its
/// path.
pub fn write(layout_dir: &Path, image_ref: &str, out: &Path) -> Result<PathBuf, OciError> {
    let layout = Layout::open(layout_dir)?;
    let desc = image_descriptor(&layout.index).ok_or_else(|| OciError::BadLayout {
        path: layout_dir.to_path_buf(),
        reason: "no image manifest in index.json".into(),
    })?;
    let manifest: oci_spec::image::ImageManifest =
        serde_json::from_slice(&layout.read_blob(desc.digest().as_ref())?).map_err(|e| {
            OciError::BadLayout {
                path: layout_dir.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
    write_manifest(layout_dir, &manifest, image_ref, out)
}

/// Writes the docker-archive of one image manifest whose blobs are in the
/// layout at `layout_dir`.
pub fn write_manifest(
    layout_dir: &Path,
    manifest: &oci_spec::image::ImageManifest,
    image_ref: &str,
    out: &Path,
) -> Result<PathBuf, OciError> {
    let config = manifest.config().digest().to_string();
    let layers: Vec<(String, PathBuf)> = manifest
        .layers()
        .iter()
        .map(|l| {
            let d = l.digest().to_string();
            let path = blob_path(layout_dir, &d);
            (d, path)
        })
        .collect();
    write_parts(
        (&config, &blob_path(layout_dir, &config)),
        &layers,
        image_ref,
        out,
    )
}

/// Writes a docker-archive of one image from its parts on the host: the
/// config (digest, file) and the layers (digest, file), bottom first.
/// Shared by `--load` and the flattened builder images.
pub fn write_parts(
    config: (&str, &Path),
    layers: &[(String, PathBuf)],
    image_ref: &str,
    out: &Path,
) -> Result<PathBuf, OciError> {
    let (config, config_path) = config;
    let work = out.with_extension("d");
    fs_err::create_dir_all(&work).map_err(OciError::io(&work))?;
    let save = [SaveManifest {
        config: format!("{}.json", hex(config)),
        repo_tags: vec![image_ref.to_string()],
        layers: layers
            .iter()
            .map(|(d, _)| format!("{}/layer.tar", hex(d)))
            .collect(),
    }];
    let manifest_json = work.join("manifest.json");
    let bytes = crate::json::canonical_compact("the docker-archive manifest", &save)?;
    fs_err::write(&manifest_json, bytes).map_err(OciError::io(&manifest_json))?;
    let entry = |archive_path: String, source: PathBuf| ArchiveEntry {
        archive_path,
        source,
    };
    let mut entries = vec![
        entry("manifest.json".into(), manifest_json),
        entry(format!("{}.json", hex(config)), config_path.to_path_buf()),
    ];
    for (d, path) in layers {
        entries.push(entry(hex(d).to_string(), work.clone()));
        entries.push(entry(format!("{}/layer.tar", hex(d)), path.clone()));
    }
    entries.sort_by(|a, b| a.archive_path.cmp(&b.archive_path));
    entries.dedup_by(|a, b| a.archive_path == b.archive_path);
    let file = fs_err::File::create(out).map_err(OciError::io(out))?;
    archive::write_entries(
        &entries,
        std::io::BufWriter::new(file),
        &ArchiveOptions {
            source_date_epoch: 0,
            compression: Compression::None,
        },
    )
    .map_err(|source| OciError::Archive {
        layer: "docker-archive".into(),
        source,
    })?;
    let _ = fs_err::remove_dir_all(&work);
    Ok(out.to_path_buf())
}

/// Loads the layout's image into the engine as `image_ref`.
pub async fn load(engine: &Engine, layout_dir: &Path, image_ref: &str) -> Result<String, OciError> {
    load_with(engine, {
        let (dir, r) = (layout_dir.to_path_buf(), image_ref.to_string());
        move |t: &Path| write(&dir, &r, t)
    })
    .await
}

/// Loads one image manifest of the layout into the engine as `image_ref`.
pub async fn load_manifest(
    engine: &Engine,
    layout_dir: &Path,
    manifest: oci_spec::image::ImageManifest,
    image_ref: &str,
) -> Result<String, OciError> {
    load_with(engine, {
        let (dir, r) = (layout_dir.to_path_buf(), image_ref.to_string());
        move |t: &Path| write_manifest(&dir, &manifest, &r, t)
    })
    .await
}

/// Writes a docker-archive with `write` into a temporary file, off the
/// async threads, and loads it.
async fn load_with(
    engine: &Engine,
    write: impl FnOnce(&Path) -> Result<PathBuf, OciError> + Send + 'static,
) -> Result<String, OciError> {
    let tmp = tempfile::tempdir().map_err(OciError::io(std::env::temp_dir()))?;
    let tar = tmp.path().join("image.tar");
    {
        let t = tar.clone();
        tokio::task::spawn_blocking(move || write(&t))
            .await
            .map_err(|e| OciError::Io {
                path: tar.clone(),
                source: std::io::Error::other(e.to_string()),
            })??;
    }
    engine
        .load_image_archive(&tar)
        .await
        .map_err(|source| OciError::Engine { source })
}

//! `hermetic images load`: a builder carried into an air-gapped machine as
//! an archive, loaded into the engine only when it is the image a catalog
//! entry pins.
//!
//! Two archive formats come in. An OCI image layout (what
//! `skopeo copy --preserve-digests docker://… oci-archive:…` writes) keeps
//! the registry's manifest, so its digest is checked against the digest the
//! catalog pins, and every blob against its name. A docker-save archive
//! keeps only the image ID (its config's digest); it is accepted for an
//! entry that pins that ID too (`image_id` in a user catalog). Either way
//! the engine's image ID after loading must be the config digest the
//! archive promised, or the image is removed again.
//!
//! Engines do not remember the registry digest of a loaded image, so the
//! accepted image is recorded in the engine's image lock (`loaded`), where
//! the resolver looks before pulling.

use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::BuilderError;
use super::lock::{LoadedImage, Lock};
use crate::catalog::{BuilderEntry, Catalog, Source};
use crate::engine::Engine;
use crate::oci::layout::{Layout, blob_path};
use crate::{archive, paths};

/// The largest archive unpacked for checking (the manylinux images are
/// about 1.5 GB unpacked).
const MAX_ARCHIVE_BYTES: u64 = 64 << 30;

/// What `images load` did.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The archive read.
    pub archive: PathBuf,
    /// `oci` or `docker`.
    pub format: &'static str,
    /// The catalog entry's pinned reference the archive matched.
    pub reference: String,
    /// Its baseline.
    pub glibc: crate::glibc::Glibc,
    /// `shipped` or the user catalog the entry comes from.
    pub origin: String,
    /// What was checked: the manifest digest, or the image ID.
    pub checked: String,
    /// The image ID in the engine.
    pub image_id: String,
    /// The tag it was loaded under.
    pub tag: String,
}

/// The two formats, as found in the unpacked archive.
enum Format {
    Oci(Box<Layout>),
    Docker(Vec<DockerSaveEntry>),
}

/// One entry of a docker-save `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerSaveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
}

/// Checks the archive against the catalog, loads it, checks the engine's
/// image ID, and records it in the lock.
pub async fn load_archive(engine: &Engine, path: &Path) -> Result<LoadReport, BuilderError> {
    let catalog = Catalog::active()?;
    let bad = |reason: String| BuilderError::BadArchive {
        archive: path.to_path_buf(),
        reason,
    };
    let work = tempfile::tempdir()?;
    let unpacked = work.path().join("image");
    {
        let (src, dest) = (path.to_path_buf(), unpacked.clone());
        tokio::task::spawn_blocking(move || {
            archive::unpack_archive(&src, &dest, MAX_ARCHIVE_BYTES)
        })
        .await
        .map_err(|e| bad(format!("unpacking stopped: {e}")))??;
    }
    let format = if unpacked.join("oci-layout").is_file() {
        Format::Oci(Box::new(
            Layout::open(&unpacked).map_err(|e| bad(e.to_string()))?,
        ))
    } else if unpacked.join("manifest.json").is_file() {
        let text = fs_err::read(unpacked.join("manifest.json"))?;
        let entries: Vec<DockerSaveEntry> =
            serde_json::from_slice(&text).map_err(|e| bad(format!("manifest.json: {e}")))?;
        Format::Docker(entries)
    } else {
        return Err(bad(
            "neither an OCI image layout (oci-layout, index.json) nor a docker-save archive \
             (manifest.json)"
                .into(),
        ));
    };

    let (entry, checked, config_digest, manifest, format_name) = match &format {
        Format::Oci(layout) => {
            verify_blobs(layout).map_err(bad)?;
            let digests = manifest_digests(layout).map_err(bad)?;
            let entry = pinned_entry(catalog, |e| {
                pinned_digest(e).is_some_and(|d| digests.iter().any(|(x, _)| x == d))
            })
            .ok_or_else(|| BuilderError::NotInCatalog {
                archive: path.to_path_buf(),
                found: digests
                    .iter()
                    .map(|(d, _)| format!("manifest {d}"))
                    .collect(),
                hint: None,
            })?;
            let pinned = pinned_digest(entry).unwrap_or_default().to_string();
            let manifest = digests
                .iter()
                .find(|(d, _)| *d == pinned)
                .and_then(|(_, m)| m.clone())
                .ok_or_else(|| bad(format!("{pinned} has no linux/amd64 image manifest")))?;
            let config = manifest.config().digest().to_string();
            (
                entry,
                format!("manifest {pinned}"),
                config,
                Some(manifest),
                "oci",
            )
        }
        Format::Docker(entries) => {
            let [one] = entries.as_slice() else {
                return Err(bad(format!(
                    "it holds {} images; load one at a time",
                    entries.len()
                )));
            };
            let hex = one
                .config
                .trim_end_matches(".json")
                .rsplit('/')
                .next()
                .unwrap_or_default();
            let id = format!("sha256:{hex}");
            let config_path = unpacked.join(&one.config);
            let (got, _) = archive::sha256_file(&config_path)?;
            if got != hex {
                return Err(bad(format!(
                    "its config {} hashes to sha256:{got}",
                    one.config
                )));
            }
            let entry = pinned_entry(catalog, |e| e.image_id.as_deref() == Some(id.as_str()))
                .ok_or_else(|| BuilderError::NotInCatalog {
                    archive: path.to_path_buf(),
                    found: vec![format!("image ID {id}")],
                    hint: Some(format!(
                        "a docker-save archive keeps the image ID, not the registry digest a \
                         catalog pins: carry an OCI archive instead (skopeo copy \
                         --preserve-digests docker://<reference> oci-archive:<file>), or pin \
                         image_id = \"{id}\" beside the reference in your catalog{}",
                        one.repo_tags
                            .as_ref()
                            .and_then(|t| t.first())
                            .map(|t| format!(" (the archive calls it {t})"))
                            .unwrap_or_default()
                    )),
                })?;
            (entry, format!("image ID {id}"), id, None, "docker")
        }
    };

    let reference = entry.reference.clone().unwrap_or_default();
    let (name, digest) = crate::engine::split_pinned(&reference)?;
    let tag = format!(
        "{name}:loaded-{}",
        &digest.trim_start_matches("sha256:")[..12]
    );
    info!("{} matches {reference}; loading it", path.display());
    match manifest {
        Some(manifest) => {
            crate::oci::docker_archive::load_manifest(engine, &unpacked, manifest, &tag)
                .await
                .map_err(|e| bad(e.to_string()))?;
        }
        None => {
            engine.load_image_archive(path).await?;
        }
    }
    let loaded = engine.inspect_image(&config_digest).await?;
    let Some(image) = loaded else {
        return Err(BuilderError::LoadedOther {
            archive: path.to_path_buf(),
            expected: config_digest,
        });
    };
    if !image.repo_tags.contains(&tag) {
        engine.tag_image(&image.id, &tag).await?;
    }
    Lock::update(&paths::image_lock(&engine.lock_key()), |lock| {
        lock.loaded.insert(
            reference.clone(),
            LoadedImage {
                image_id: image.id.clone(),
                tag: tag.clone(),
                archive: path.display().to_string(),
                checked: checked.clone(),
            },
        );
    })?;
    Ok(LoadReport {
        archive: path.to_path_buf(),
        format: format_name,
        reference,
        glibc: entry.glibc,
        origin: entry.origin.to_string(),
        checked,
        image_id: image.id,
        tag,
    })
}

/// The digest an entry's reference pins (`name@sha256:…`).
fn pinned_digest(entry: &BuilderEntry) -> Option<&str> {
    let reference = entry.reference.as_deref()?;
    crate::engine::split_pinned(reference).ok().map(|(_, d)| d)
}

/// The first upstream entry `matches` picks (a user catalog's entry has
/// already replaced the shipped one for its baseline).
fn pinned_entry(
    catalog: &Catalog,
    matches: impl Fn(&BuilderEntry) -> bool,
) -> Option<&BuilderEntry> {
    catalog
        .builder
        .iter()
        .filter(|e| e.source == Source::Upstream)
        .find(|e| matches(e))
}

/// Every blob's content hashes to its name.
fn verify_blobs(layout: &Layout) -> Result<(), String> {
    let dir = layout.dir.join("blobs/sha256");
    let entries = fs_err::read_dir(&dir).map_err(|e| e.to_string())?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let (got, _) = archive::sha256_file(&entry.path()).map_err(|e| e.to_string())?;
        if got != name {
            return Err(format!(
                "blob sha256:{name} is damaged: its content hashes to sha256:{got}"
            ));
        }
    }
    Ok(())
}

/// The digests of every manifest and index the layout's index names (one
/// level of nesting, as registries serve them), each with the linux/amd64
/// image manifest it stands for.
fn manifest_digests(layout: &Layout) -> Result<Vec<(String, Option<ImageManifest>)>, String> {
    let read = |d: &Descriptor| -> Result<Vec<u8>, String> {
        fs_err::read(blob_path(&layout.dir, d.digest().as_ref())).map_err(|e| e.to_string())
    };
    let manifest_of = |bytes: &[u8]| serde_json::from_slice::<ImageManifest>(bytes).ok();
    let mut out = Vec::new();
    for d in layout.index.manifests() {
        let bytes = read(d)?;
        let digest = d.digest().to_string();
        match serde_json::from_slice::<ImageIndex>(&bytes) {
            Ok(nested) if nested.manifests().iter().any(|m| m.platform().is_some()) => {
                let amd64 = nested.manifests().iter().find(|m| {
                    m.platform().as_ref().is_some_and(|p| {
                        p.os().to_string() == "linux" && p.architecture().to_string() == "amd64"
                    })
                });
                let image = match amd64 {
                    Some(m) => manifest_of(&read(m)?),
                    None => None,
                };
                out.push((digest, image.clone()));
                if let Some(m) = amd64 {
                    out.push((m.digest().to_string(), image));
                }
            }
            _ => out.push((digest, manifest_of(&bytes))),
        }
    }
    if out.is_empty() {
        return Err("index.json names no manifest".into());
    }
    Ok(out)
}

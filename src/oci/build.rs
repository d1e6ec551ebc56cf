//! `hermetic image`: a bundle -> a reproducible OCI image, without an engine.
//!
//! Layers, bottom to top: the base rootfs — the catalog's mmdebstrap minbase
//! tarball, its bytes gzip-compressed as they are, so that the layer's
//! diff_id and the catalog's pin are the same SHA-256 (recorded as
//! `org.opencontainers.image.base.digest`) and it is never re-tarred
//! (re-tarring it through `archive` is not an option: a rootfs has device
//! nodes and setuid files a bundle may not have) — then the gzip runtime,
//! deps and app layers of [`super::layers`], written by `archive`. The bundle sits at `/opt/<name>/`.
//!
//! The config and manifest depend only on the bundle's bytes, `bundle.json`
//! and the settings: `created` is the bundle's SOURCE_DATE_EPOCH, JSON is
//! canonical, layers are deterministic. Same inputs, same manifest digest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, HistoryBuilder, ImageConfigurationBuilder, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, Os, PlatformBuilder, RootFsBuilder,
};
use serde::Serialize;
use tracing::{info, instrument};

use super::layers::{self, LayerRole};
use super::layout::{self, LayoutWriter, descriptor};
use super::push::{PushReport, PushTarget};
use super::{OciError, SBOM_ARTIFACT_TYPE, annotation};
use crate::archive::{self, ArchiveEntry, ArchiveOptions, Compression, TreeSummary};
use crate::builder::{self, RootfsTarball};
use crate::bundle::{BundleMeta, META_PATH, SBOM_DIR};
use crate::catalog::Catalog;
use crate::engine::Engine;

/// Default user of the image: the conventional unprivileged "nonroot" id.
pub const DEFAULT_USER: &str = "65532:65532";

/// What `hermetic image` is asked to do.
#[derive(Debug, Clone)]
pub struct ImageSettings {
    /// The bundle: its directory (with `share/hermetic/bundle.json`) or the
    /// archive (`.tar.gz`, `.tar.zst`) `hermetic build` wrote.
    pub bundle: PathBuf,
    /// Runtime base suite (`bullseye`, `bookworm`, `trixie`); `None` = the
    /// newest in the catalog.
    pub base: Option<String>,
    /// Write the image as an OCI layout here (replaced atomically).
    pub oci_layout: Option<PathBuf>,
    /// Load the image into the engine.
    pub load: bool,
    /// Push the image.
    pub push: Option<PushTarget>,
    /// Tag used for `ref.name` in the layout and for `--load`; `None` = the
    /// bundle version (with characters tags do not allow replaced by `-`).
    pub tag: Option<String>,
    /// `org.opencontainers.image.revision` (e.g. a git commit).
    pub revision: Option<String>,
    /// `org.opencontainers.image.source` (e.g. a repository URL).
    pub source: Option<String>,
    /// `user[:group]` the entrypoint runs as.
    pub user: String,
}

impl ImageSettings {
    /// Settings with defaults for everything but the bundle.
    pub fn new(bundle: impl Into<PathBuf>) -> Self {
        ImageSettings {
            bundle: bundle.into(),
            base: None,
            oci_layout: None,
            load: false,
            push: None,
            tag: None,
            revision: None,
            source: None,
            user: DEFAULT_USER.to_string(),
        }
    }
}

/// One layer of the built image.
#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    /// Which layer this is (base, runtime, deps, app).
    pub role: LayerRole,
    /// The layer's media type (gzip-compressed tar).
    pub media_type: String,
    /// `sha256:…` of the compressed layer blob.
    pub digest: String,
    /// Size of the compressed blob in bytes.
    pub size: u64,
    /// `sha256:…` of the uncompressed tar stream.
    pub diff_id: String,
    /// Regular files in the layer (not counted for the base: 0).
    pub files: u64,
}

/// An image staged as an OCI layout in a temporary directory.
#[derive(Debug)]
pub struct BuiltImage {
    /// The staging directory (a sibling of `--oci-layout` when given).
    pub staged: tempfile::TempDir,
    /// Image name (the repository part).
    pub name: String,
    /// Image tag.
    pub tag: String,
    /// `sha256:…` of the image manifest.
    pub manifest_digest: String,
    /// `sha256:…` of the config (the engine's image ID).
    pub config_digest: String,
    /// The layers, bottom first.
    pub layers: Vec<LayerReport>,
    /// Digest of the SBOM artifact manifest, when the bundle has an SBOM.
    pub sbom_manifest: Option<String>,
    /// Base suite and its rootfs SHA-256.
    pub base: String,
    /// Hex SHA-256 of the base's rootfs tarball.
    pub base_sha256: String,
}

/// The result of `hermetic image`, for `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct ImageReport {
    /// Image name (the repository part).
    pub name: String,
    /// Image tag.
    pub tag: String,
    /// `sha256:…` of the image manifest.
    pub manifest_digest: String,
    /// `sha256:…` of the config (the engine's image ID).
    pub config_digest: String,
    /// Base, by Debian suite.
    pub base: String,
    /// Hex SHA-256 of the base's rootfs tarball.
    pub base_sha256: String,
    /// The layers, bottom first.
    pub layers: Vec<LayerReport>,
    /// Sum of the compressed layer sizes.
    pub compressed_size: u64,
    /// Digest of the SBOM artifact manifest, when the bundle has an SBOM.
    pub sbom_manifest: Option<String>,
    /// `--oci-layout`: where the layout was written, if asked.
    pub oci_layout: Option<PathBuf>,
    /// What the engine reported after `--load`.
    pub loaded: Option<String>,
    /// What `--push` did, if asked.
    pub pushed: Option<PushReport>,
    /// Wall time of the whole command, in milliseconds.
    pub elapsed_ms: u64,
}

/// Builds the image, then writes/loads/pushes it as asked. `engine` is
/// needed only with `load`.
#[instrument(skip_all, fields(bundle = %settings.bundle.display()))]
pub async fn image(
    settings: &ImageSettings,
    engine: Option<&Engine>,
) -> Result<ImageReport, OciError> {
    let started = Instant::now();
    let staging_parent = settings
        .oci_layout
        .as_ref()
        .map(|p| {
            p.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
        })
        .map(Path::to_path_buf);
    let built = build_image(settings, staging_parent.as_deref()).await?;
    let mut layout_dir = built.staged.path().to_path_buf();
    let mut loaded = None;
    if settings.load {
        let engine = engine.ok_or_else(|| OciError::Engine {
            source: crate::engine::EngineError::NotReachable { tried: vec![] },
        })?;
        let image_ref = format!("{}:{}", built.name, built.tag);
        loaded = Some(super::docker_archive::load(engine, &layout_dir, &image_ref).await?);
    }
    let report_base = ImageReport {
        name: built.name.clone(),
        tag: built.tag.clone(),
        manifest_digest: built.manifest_digest.clone(),
        config_digest: built.config_digest.clone(),
        base: built.base.clone(),
        base_sha256: built.base_sha256.clone(),
        compressed_size: built.layers.iter().map(|l| l.size).sum(),
        layers: built.layers.clone(),
        sbom_manifest: built.sbom_manifest.clone(),
        oci_layout: settings.oci_layout.clone(),
        loaded: None,
        pushed: None,
        elapsed_ms: 0,
    };
    // Keep the staging directory alive until the push is done.
    let _staged_guard;
    if let Some(dest) = &settings.oci_layout {
        layout::persist(built.staged, dest)?;
        layout_dir = dest.clone();
        _staged_guard = None;
    } else {
        _staged_guard = Some(built.staged);
    }
    let pushed = match &settings.push {
        Some(target) => {
            let layout = layout::Layout::open(&layout_dir)?;
            Some(super::push::push_layout(&layout, target).await?)
        }
        None => None,
    };
    Ok(ImageReport {
        loaded,
        pushed,
        elapsed_ms: started.elapsed().as_millis() as u64,
        ..report_base
    })
}

/// A bundle ready to be layered: its top directory and metadata.
struct OpenBundle {
    root: PathBuf,
    meta: BundleMeta,
    _unpacked: Option<tempfile::TempDir>,
}

fn open_bundle(path: &Path) -> Result<OpenBundle, OciError> {
    let not = |reason: String| OciError::NotABundle {
        path: path.to_path_buf(),
        reason,
    };
    let (root, unpacked) = if path.is_dir() {
        (path.to_path_buf(), None)
    } else if path.is_file() {
        let tmp = tempfile::tempdir().map_err(OciError::io(std::env::temp_dir()))?;
        archive::unpack_limit()
            .and_then(|limit| archive::unpack_archive(path, tmp.path(), limit))
            .map_err(|e| not(format!("cannot unpack: {e}")))?;
        let mut tops = fs_err::read_dir(tmp.path())
            .map_err(OciError::io(tmp.path()))?
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.path())
            .collect::<Vec<_>>();
        if tops.len() != 1 {
            return Err(not(format!(
                "expected one top directory in the archive, found {}",
                tops.len()
            )));
        }
        (tops.remove(0), Some(tmp))
    } else {
        return Err(not("no such file or directory".into()));
    };
    let meta_path = root.join(META_PATH);
    let text = fs_err::read(&meta_path).map_err(|e| not(format!("{META_PATH}: {e}")))?;
    let meta: BundleMeta =
        serde_json::from_slice(&text).map_err(|e| not(format!("{META_PATH}: {e}")))?;
    Ok(OpenBundle {
        root,
        meta,
        _unpacked: unpacked,
    })
}

/// A tag made from a version: tags allow `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn tag_from(version: &str) -> String {
    let mut tag: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect();
    if tag.is_empty() || tag.starts_with(['.', '-']) {
        tag.insert(0, 'v');
        tag.truncate(128);
    }
    tag
}

/// RFC 3339 UTC time of a Unix epoch (days-to-civil, no time crate needed).
pub fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The base layer: the rootfs tarball's bytes, gzip-compressed as they are
/// (not re-tarred). Its diff_id is the tarball's SHA-256, the catalog's pin;
/// a tarball that no longer hashes to it is refused.
fn base_layer(rootfs: &RootfsTarball, writer: &LayoutWriter) -> Result<LayerReport, OciError> {
    let tmp = tempfile::NamedTempFile::new_in(writer.dir()).map_err(OciError::io(writer.dir()))?;
    let input = fs_err::File::open(&rootfs.path).map_err(OciError::io(&rootfs.path))?;
    let out = std::io::BufWriter::new(tmp.as_file());
    let s = archive::compress_tar(input, out, Compression::Gzip).map_err(|source| {
        OciError::Archive {
            layer: LayerRole::Base.as_str().into(),
            source,
        }
    })?;
    if s.tar_sha256 != rootfs.sha256 {
        return Err(OciError::BaseCorrupt {
            path: rootfs.path.clone(),
            expected: rootfs.sha256.clone(),
            got: s.tar_sha256,
        });
    }
    let digest = format!("sha256:{}", s.sha256);
    let kept = tmp
        .into_temp_path()
        .keep()
        .map_err(|e| OciError::io(writer.dir())(e.error))?;
    writer.adopt(&kept, &digest)?;
    Ok(LayerReport {
        role: LayerRole::Base,
        media_type: MediaType::ImageLayerGzip.to_string(),
        digest,
        size: s.size,
        diff_id: format!("sha256:{}", s.tar_sha256),
        files: 0,
    })
}

fn bundle_layer(
    role: LayerRole,
    entries: &[ArchiveEntry],
    writer: &LayoutWriter,
    opts: &ArchiveOptions,
) -> Result<LayerReport, OciError> {
    let tmp = tempfile::NamedTempFile::new_in(writer.dir()).map_err(OciError::io(writer.dir()))?;
    let out = std::io::BufWriter::new(tmp.as_file());
    let s: TreeSummary =
        archive::write_entries(entries, out, opts).map_err(|source| OciError::Archive {
            layer: role.as_str().into(),
            source,
        })?;
    let digest = format!("sha256:{}", s.sha256);
    let path = tmp.into_temp_path();
    let kept = path
        .keep()
        .map_err(|e| OciError::io(writer.dir())(e.error))?;
    writer.adopt(&kept, &digest)?;
    Ok(LayerReport {
        role,
        media_type: MediaType::ImageLayerGzip.to_string(),
        digest,
        size: s.size,
        diff_id: format!("sha256:{}", s.tar_sha256),
        files: s.files,
    })
}

/// Builds the image into a staged layout (in `staging_parent`, else the
/// system temp dir). Needs no engine.
#[instrument(skip_all, fields(bundle = %settings.bundle.display()))]
pub async fn build_image(
    settings: &ImageSettings,
    staging_parent: Option<&Path>,
) -> Result<BuiltImage, OciError> {
    let bundle = open_bundle(&settings.bundle)?;
    let meta = &bundle.meta;
    let name = meta.name.clone();
    let catalog = Catalog::active().map_err(|source| OciError::Base {
        suite: settings.base.clone().unwrap_or_default(),
        source: source.into(),
    })?;
    let base_entry = match &settings.base {
        Some(suite) => catalog
            .runtime
            .iter()
            .find(|r| &r.suite == suite)
            .ok_or_else(|| OciError::UnknownBase {
                suite: suite.clone(),
                known: catalog.runtime.iter().map(|r| r.suite.clone()).collect(),
            })?,
        None => catalog
            .newest_runtime()
            .ok_or_else(|| OciError::UnknownBase {
                suite: "(default)".into(),
                known: vec![],
            })?,
    };
    if meta.glibc > base_entry.glibc {
        return Err(OciError::BaseTooOld {
            name: name.clone(),
            needed: meta.glibc.to_string(),
            suite: base_entry.suite.clone(),
            found: base_entry.glibc.to_string(),
        });
    }
    let suite = base_entry.suite.clone();
    let rootfs = builder::ensure_rootfs(&suite, false)
        .await
        .map_err(|source| OciError::Base {
            suite: suite.clone(),
            source,
        })?;

    let parent = staging_parent
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    fs_err::create_dir_all(&parent).map_err(OciError::io(&parent))?;
    let staged = tempfile::Builder::new()
        .prefix(".hermetic-image-")
        .tempdir_in(&parent)
        .map_err(OciError::io(&parent))?;
    let writer = LayoutWriter::create(staged.path())?;
    let opts = ArchiveOptions {
        source_date_epoch: meta.source_date_epoch,
        compression: Compression::Gzip,
    };

    // Layer writing is blocking file work: keep it off the async workers.
    let (layers, writer) = {
        let root = bundle.root.clone();
        let name = name.clone();
        let rootfs = rootfs.clone();
        tokio::task::spawn_blocking(move || -> Result<_, OciError> {
            let phase = crate::progress::Phase::start("image-layers", "writing image layers");
            let mut out = vec![base_layer(&rootfs, &writer)?];
            for (role, entries) in layers::split(&root, &name)? {
                out.push(bundle_layer(role, &entries, &writer, &opts)?);
            }
            phase.finish();
            Ok((out, writer))
        })
        .await
        .map_err(|e| OciError::Io {
            path: bundle.root.clone(),
            source: std::io::Error::other(e.to_string()),
        })??
    };

    let created = rfc3339(meta.source_date_epoch);
    let tag = settings
        .tag
        .clone()
        .unwrap_or_else(|| tag_from(&meta.version));
    let base_digest = format!("sha256:{}", rootfs.sha256);
    let base_name = format!("hermetic/base:{suite}");
    let mut annotations = HashMap::from([
        (annotation::CREATED.to_string(), created.clone()),
        (annotation::VERSION.to_string(), meta.version.clone()),
        (annotation::TITLE.to_string(), name.clone()),
        (annotation::BASE_DIGEST.to_string(), base_digest.clone()),
        (annotation::BASE_NAME.to_string(), base_name),
    ]);
    if let Some(r) = &settings.revision {
        annotations.insert(annotation::REVISION.into(), r.clone());
    }
    if let Some(s) = &settings.source {
        annotations.insert(annotation::SOURCE.into(), s.clone());
    }

    let spec_err = |e: oci_spec::OciSpecError| OciError::BadLayout {
        path: writer.dir().to_path_buf(),
        reason: e.to_string(),
    };
    let home = format!("/opt/{name}");
    let launcher = meta.launchers.first().cloned();
    let config = ConfigBuilder::default()
        .user(settings.user.clone())
        .env(vec![
            format!("PATH={home}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
            "LANG=C.UTF-8".to_string(),
        ])
        .working_dir(home.clone())
        .labels(annotations.clone());
    let config = match &launcher {
        Some(l) => config.entrypoint(vec![format!("{home}/{l}")]),
        None => config,
    }
    .build()
    .map_err(spec_err)?;
    let history = layers
        .iter()
        .map(|l| {
            let by = match l.role {
                LayerRole::Base => format!("mmdebstrap --variant=minbase {suite}"),
                role => format!("hermetic image: {} layer of {name}", role.as_str()),
            };
            HistoryBuilder::default()
                .created(created.clone())
                .created_by(by)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(spec_err)?;
    let image_config = ImageConfigurationBuilder::default()
        .created(created.clone())
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(config)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>())
                .build()
                .map_err(spec_err)?,
        )
        .history(history)
        .build()
        .map_err(spec_err)?;
    let (config_digest, config_size) = writer.put_json(&image_config)?;
    let layer_descs = layers
        .iter()
        .map(|l| descriptor(MediaType::from(l.media_type.as_str()), &l.digest, l.size))
        .collect::<Result<Vec<_>, _>>()?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(
            MediaType::ImageConfig,
            &config_digest,
            config_size,
        )?)
        .layers(layer_descs)
        .annotations(annotations)
        .build()
        .map_err(spec_err)?;
    let (manifest_digest, manifest_size) = writer.put_json(&manifest)?;
    let mut image_desc = descriptor(MediaType::ImageManifest, &manifest_digest, manifest_size)?;
    let subject = image_desc.clone();
    image_desc.set_platform(Some(
        PlatformBuilder::default()
            .architecture(Arch::Amd64)
            .os(Os::Linux)
            .build()
            .map_err(spec_err)?,
    ));
    image_desc.set_annotations(Some(HashMap::from([(
        annotation::REF_NAME.to_string(),
        tag.clone(),
    )])));
    let mut index_manifests = vec![image_desc];

    // The SBOM, as an artifact manifest whose subject is the image.
    let sbom_path = bundle.root.join(SBOM_DIR).join(format!("{name}.cdx.json"));
    let mut sbom_manifest = None;
    if sbom_path.is_file() {
        let bytes = fs_err::read(&sbom_path).map_err(OciError::io(&sbom_path))?;
        let (sbom_digest, sbom_size) = writer.put_bytes(&bytes)?;
        let (empty_digest, empty_size) = writer.put_bytes(b"{}")?;
        let mut sbom_desc = descriptor(
            MediaType::Other(SBOM_ARTIFACT_TYPE.into()),
            &sbom_digest,
            sbom_size,
        )?;
        sbom_desc.set_annotations(Some(HashMap::from([(
            annotation::TITLE.to_string(),
            format!("{name}.cdx.json"),
        )])));
        let artifact = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .artifact_type(MediaType::Other(SBOM_ARTIFACT_TYPE.into()))
            .config(descriptor(MediaType::EmptyJSON, &empty_digest, empty_size)?)
            .layers(vec![sbom_desc])
            .subject(subject)
            .annotations(HashMap::from([(
                annotation::CREATED.to_string(),
                created.clone(),
            )]))
            .build()
            .map_err(spec_err)?;
        let (digest, size) = writer.put_json(&artifact)?;
        let mut desc = descriptor(MediaType::ImageManifest, &digest, size)?;
        desc.set_artifact_type(Some(MediaType::Other(SBOM_ARTIFACT_TYPE.into())));
        index_manifests.push(desc);
        sbom_manifest = Some(digest);
    }
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(index_manifests)
        .build()
        .map_err(spec_err)?;
    writer.finish(&index)?;
    info!(digest = %manifest_digest, "image {name}:{tag} built");
    Ok(BuiltImage {
        staged,
        name,
        tag,
        manifest_digest,
        config_digest,
        layers,
        sbom_manifest,
        base: suite,
        base_sha256: rootfs.sha256,
    })
}

/// Finds the image manifest (the index entry without an artifact type).
pub(crate) fn image_descriptor(index: &oci_spec::image::ImageIndex) -> Option<&Descriptor> {
    index
        .manifests()
        .iter()
        .find(|d| d.artifact_type().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_epochs() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn tags_from_versions() {
        assert_eq!(tag_from("1.2.3"), "1.2.3");
        assert_eq!(tag_from("1.0+local"), "1.0-local");
        assert_eq!(tag_from(".x"), "v.x");
    }
}

//! The OCI image layout on disk (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`): writing one into a staging directory, moving it
//! into place atomically, and reading one back (for `hermetic push`).
//!
//! JSON documents are written canonically (keys sorted through
//! `serde_json::Value`, no whitespace): oci-spec keeps annotations and labels
//! in `HashMap`s, whose order would otherwise change from run to run and
//! with it every digest.

use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::OciError;

/// Canonical JSON bytes of an OCI document (see [`crate::json`]).
pub fn canonical_json<T: Serialize>(doc: &T) -> Result<Vec<u8>, OciError> {
    Ok(crate::json::canonical_compact("an OCI document", doc)?)
}

/// `sha256:<hex>` of some bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Path of a blob inside a layout directory.
pub fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    dir.join("blobs").join("sha256").join(hex)
}

/// Builds a descriptor (infallible for well-formed digests we computed).
pub fn descriptor(media_type: MediaType, digest: &str, size: u64) -> Result<Descriptor, OciError> {
    let d: oci_spec::image::Digest =
        digest
            .parse()
            .map_err(|e: oci_spec::OciSpecError| OciError::BadBlob {
                layout: PathBuf::new(),
                digest: digest.to_string(),
                reason: e.to_string(),
            })?;
    Ok(Descriptor::new(media_type, size, d))
}

/// A layout being written in a staging directory.
#[derive(Debug)]
pub struct LayoutWriter {
    dir: PathBuf,
}

impl LayoutWriter {
    /// Starts a layout in `dir` (created if needed).
    pub fn create(dir: &Path) -> Result<Self, OciError> {
        let blobs = dir.join("blobs").join("sha256");
        fs_err::create_dir_all(&blobs).map_err(OciError::io(&blobs))?;
        Ok(LayoutWriter {
            dir: dir.to_path_buf(),
        })
    }

    /// The layout's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores bytes as a blob; returns (digest, size).
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<(String, u64), OciError> {
        let digest = digest_of(bytes);
        let path = blob_path(&self.dir, &digest);
        fs_err::write(&path, bytes).map_err(OciError::io(&path))?;
        Ok((digest, bytes.len() as u64))
    }

    /// Stores a canonical JSON document as a blob.
    pub fn put_json<T: Serialize>(&self, doc: &T) -> Result<(String, u64), OciError> {
        self.put_bytes(&canonical_json(doc)?)
    }

    /// Moves a file that was written elsewhere in the layout (a temp file)
    /// to its blob path.
    pub fn adopt(&self, file: &Path, digest: &str) -> Result<PathBuf, OciError> {
        let path = blob_path(&self.dir, digest);
        fs_err::rename(file, &path).map_err(OciError::io(&path))?;
        Ok(path)
    }

    /// Writes `oci-layout` and `index.json`.
    pub fn finish(&self, index: &ImageIndex) -> Result<(), OciError> {
        let marker = self.dir.join("oci-layout");
        fs_err::write(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)
            .map_err(OciError::io(&marker))?;
        let path = self.dir.join("index.json");
        fs_err::write(&path, canonical_json(index)?).map_err(OciError::io(&path))?;
        Ok(())
    }
}

/// Replaces `dest` with the staged directory `staged` (which must be on the
/// same filesystem, e.g. a sibling): rename the old one aside, rename the
/// new one in, then delete the old one. A reader never sees a half-written
/// layout.
pub fn persist(staged: tempfile::TempDir, dest: &Path) -> Result<(), OciError> {
    let staged = staged.keep();
    let old = dest.with_file_name(format!(
        ".{}.old-{}",
        dest.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let had_old = dest.exists();
    if had_old {
        fs_err::rename(dest, &old).map_err(OciError::io(dest))?;
    }
    if let Err(e) = fs_err::rename(&staged, dest) {
        if had_old {
            let _ = fs_err::rename(&old, dest);
        }
        let _ = fs_err::remove_dir_all(&staged);
        return Err(OciError::Io {
            path: dest.to_path_buf(),
            source: e,
        });
    }
    if had_old {
        let _ = fs_err::remove_dir_all(&old);
    }
    Ok(())
}

/// A layout read from disk.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The layout's directory.
    pub dir: PathBuf,
    /// Its `index.json`.
    pub index: ImageIndex,
}

impl Layout {
    /// Opens and checks the layout at `dir`.
    pub fn open(dir: &Path) -> Result<Self, OciError> {
        let bad = |reason: String| OciError::BadLayout {
            path: dir.to_path_buf(),
            reason,
        };
        if !dir.join("oci-layout").is_file() {
            return Err(bad("no oci-layout file".into()));
        }
        let index_path = dir.join("index.json");
        let text = fs_err::read(&index_path).map_err(|e| bad(e.to_string()))?;
        let index: ImageIndex =
            serde_json::from_slice(&text).map_err(|e| bad(format!("index.json: {e}")))?;
        Ok(Layout {
            dir: dir.to_path_buf(),
            index,
        })
    }

    /// Reads a blob and checks its digest.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, OciError> {
        let path = blob_path(&self.dir, digest);
        let bytes = fs_err::read(&path).map_err(|e| OciError::BadBlob {
            layout: self.dir.clone(),
            digest: digest.to_string(),
            reason: e.to_string(),
        })?;
        let got = digest_of(&bytes);
        if got != digest {
            return Err(OciError::BadBlob {
                layout: self.dir.clone(),
                digest: digest.to_string(),
                reason: format!("content hashes to {got}"),
            });
        }
        Ok(bytes)
    }

    /// Where the blob with this `sha256:…` digest is in the layout.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        blob_path(&self.dir, digest)
    }

    /// The image manifests of the index (entries without a `subject`
    /// relation, i.e. not referrers), with their descriptors.
    pub fn manifests(&self) -> Result<Vec<(Descriptor, ImageManifest)>, OciError> {
        self.index
            .manifests()
            .iter()
            .map(|d| {
                let bytes = self.read_blob(d.digest().as_ref())?;
                let m: ImageManifest =
                    serde_json::from_slice(&bytes).map_err(|e| OciError::BadBlob {
                        layout: self.dir.clone(),
                        digest: d.digest().to_string(),
                        reason: format!("not an image manifest: {e}"),
                    })?;
                Ok((d.clone(), m))
            })
            .collect()
    }
}

//! Pinned downloads made on the host: a file fetched by URL, checked
//! against its SHA-256 while it streams, and kept under
//! `$HERMETIC_HOME/downloads` by hash, so it is fetched once per machine.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::BuilderError;
use crate::catalog::PinnedDownload;
use crate::paths;

/// The file for `pin`, downloaded unless a cached copy matches its hash.
pub async fn fetch_pinned(pin: &PinnedDownload) -> Result<PathBuf, BuilderError> {
    let dir = paths::home().join("downloads");
    fs_err::create_dir_all(&dir)?;
    let path = dir.join(format!("{}-{}", &pin.sha256[..12], pin.file_name()));
    if path.is_file() {
        let (sha256, _) = crate::archive::sha256_file(&path)?;
        if sha256 == pin.sha256 {
            return Ok(path);
        }
        tracing::warn!(path = %path.display(), "cached download does not match its pinned hash; fetching it again");
    }
    let fail = |reason: String| BuilderError::Download {
        url: pin.url.clone(),
        reason,
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .user_agent(concat!("hermetic/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| fail(format!("cannot make an HTTP client: {e}")))?;
    let response = client
        .get(&pin.url)
        .send()
        .await
        .map_err(|e| fail(crate::oci::registry::error_chain(&e)))?;
    if !response.status().is_success() {
        return Err(fail(format!("the server answered {}", response.status())));
    }
    let total = response.content_length();
    let bar = crate::progress::bytes(format!("downloading {}", pin.file_name()), total);
    let mut tmp = tempfile::Builder::new()
        .prefix(".download-")
        .tempfile_in(&dir)?;
    let mut hasher = Sha256::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| fail(crate::oci::registry::error_chain(&e)))?;
        hasher.update(&chunk);
        tmp.write_all(&chunk)
            .map_err(|e| fail(format!("writing {}: {e}", tmp.path().display())))?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let got = hex::encode(hasher.finalize());
    if got != pin.sha256 {
        return Err(fail(format!(
            "sha256 mismatch: the catalog pins {}, the server sent {got}",
            pin.sha256
        )));
    }
    tmp.persist(&path).map_err(|e| BuilderError::Io(e.error))?;
    Ok(path)
}

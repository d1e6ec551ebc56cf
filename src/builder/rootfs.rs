//! Host-side rootfs tarballs: a Debian suite's minbase tree made with
//! mmdebstrap (or debootstrap + tar) from the catalog's mirror at its fixed
//! epoch. Needs no engine: the tarball is both the source of a base image
//! and the base layer of `hermetic image`. Pinned by its SHA-256, recorded
//! beside it; a cached tarball that no longer matches is made again.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::BuilderError;
use crate::catalog::{Catalog, LocalConfig};
use crate::glibc::Glibc;
use crate::{paths, progress};

/// A suite's minbase rootfs tarball, kept on the host.
#[derive(Debug, Clone, Serialize)]
pub struct RootfsTarball {
    /// The suite.
    pub suite: String,
    /// Where the tarball is.
    pub path: PathBuf,
    /// Its SHA-256.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// The glibc of the suite.
    pub glibc: Glibc,
}

/// Makes (or finds) the rootfs tarball of a suite.
pub async fn ensure_rootfs(suite: &str, force: bool) -> Result<RootfsTarball, BuilderError> {
    let catalog = Catalog::active()?;
    let glibc = catalog.suite_glibc(suite)?;
    let key = catalog.base_inputs_hash(suite);
    let dir = paths::home().join("rootfs");
    fs_err::create_dir_all(&dir)?;
    let path = dir.join(format!("{suite}-{}.tar", &key[..12]));
    let sum_path = path.with_extension("tar.sha256");
    if !force
        && path.is_file()
        && let Ok(recorded) = fs_err::read_to_string(&sum_path)
    {
        let (sha256, size) = crate::archive::sha256_file(&path)?;
        if recorded.trim() == sha256 {
            return Ok(RootfsTarball {
                suite: suite.to_string(),
                path,
                sha256,
                size,
                glibc,
            });
        }
        tracing::warn!(path = %path.display(), "cached rootfs does not match its recorded hash; remaking it");
    }
    let tmp = tempfile::Builder::new()
        .prefix(".rootfs-")
        .suffix(".tar")
        .tempfile_in(&dir)?;
    let log = paths::fresh_log(&format!("rootfs-{suite}.log"));
    make_rootfs(suite, &catalog.local, tmp.path(), &log).await?;
    let (sha256, size) = crate::archive::sha256_file(tmp.path())?;
    tmp.persist(&path).map_err(|e| BuilderError::Io(e.error))?;
    fs_err::write(&sum_path, format!("{sha256}\n"))?;
    Ok(RootfsTarball {
        suite: suite.to_string(),
        path,
        sha256,
        size,
        glibc,
    })
}

/// Runs mmdebstrap (or debootstrap when mmdebstrap is missing) on the host
/// to write a minbase rootfs tarball of `suite`.
async fn make_rootfs(
    suite: &str,
    local: &LocalConfig,
    tarball: &Path,
    log: &Path,
) -> Result<(), BuilderError> {
    if let Some(dir) = log.parent() {
        fs_err::create_dir_all(dir)?;
    }
    let log_file = fs_err::File::create(log)?;
    let phase = progress::Phase::start(
        "rootfs",
        format!("mmdebstrap {suite} from {}", local.mirror),
    );
    let status = if which("mmdebstrap") {
        tokio::process::Command::new("mmdebstrap")
            .env("SOURCE_DATE_EPOCH", local.source_date_epoch.to_string())
            .args(["--variant=minbase", "--mode=auto", "--format=tar", suite])
            .arg(tarball)
            .arg(&local.mirror)
            .stdout(log_file.try_clone()?.into_parts().0)
            .stderr(log_file.into_parts().0)
            .status()
            .await
    } else if which("debootstrap") {
        let dir = tarball.with_extension("d");
        let status = tokio::process::Command::new("debootstrap")
            .env("SOURCE_DATE_EPOCH", local.source_date_epoch.to_string())
            .args(["--variant=minbase", suite])
            .arg(&dir)
            .arg(&local.mirror)
            .stdout(log_file.try_clone()?.into_parts().0)
            .stderr(log_file.into_parts().0)
            .status()
            .await?;
        if status.success() {
            let tarred = tokio::process::Command::new("tar")
                .args([
                    "--sort=name",
                    "--numeric-owner",
                    &format!("--mtime=@{}", local.source_date_epoch),
                    "-C",
                ])
                .arg(&dir)
                .arg("-cf")
                .arg(tarball)
                .arg(".")
                .status()
                .await;
            let _ = fs_err::remove_dir_all(&dir);
            tarred
        } else {
            Ok(status)
        }
    } else {
        return Err(BuilderError::NoBootstrapTool);
    };
    phase.finish();
    let status = status?;
    if !status.success() {
        return Err(BuilderError::Rootfs {
            suite: suite.to_string(),
            log: log.to_path_buf(),
            status: status.to_string(),
        });
    }
    Ok(())
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

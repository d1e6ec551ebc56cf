//! The engine as the build orchestration sees it: two object-safe traits,
//! [`ContainerEngine`] and [`ContainerHandle`], implemented by the real
//! Docker/Podman client ([`super::Engine`], [`super::Container`]) and by the
//! recording fake ([`super::fake`]) that lets the orchestration run in unit
//! tests without an engine.
//!
//! Only what a build needs is here: images are inspected or pulled by
//! digest, containers are created, commands run in them, files cross as tar
//! streams, and a container can be committed or removed. Making images
//! (rootfs imports, Dockerfile builds, loads) and `gc` stay inherent
//! methods of the real engine: nothing but the real engine can do them.

use std::collections::HashMap;
use std::path::Path;

use async_trait::async_trait;

use super::{
    CA_PATH, Container, ContainerSpec, Engine, EngineError, EngineInfo, EngineKind, ExecOutput,
    ExecSpec, ImageInfo, Network,
};

/// A container engine: Docker, Podman, or the test fake.
#[async_trait]
pub trait ContainerEngine: Send + Sync {
    /// Which engine this is (its capability methods say how it differs).
    fn kind(&self) -> EngineKind;

    /// Facts about the engine, for reports.
    fn info(&self) -> EngineInfo;

    /// Inspects an image; `Ok(None)` when the engine does not have it.
    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError>;

    /// Makes sure an image pinned as `name@sha256:<digest>` is present
    /// (pulling it if not) and that its registry digest is the pinned one.
    async fn ensure_pinned(
        &self,
        reference: &str,
        hint: Option<String>,
    ) -> Result<ImageInfo, EngineError>;

    /// Creates and starts a labelled container that idles until commands
    /// are run in it.
    async fn create_container(
        &self,
        spec: &ContainerSpec,
    ) -> Result<Box<dyn ContainerHandle>, EngineError>;
}

/// A running container. Remove it with [`ContainerHandle::remove`].
#[async_trait]
pub trait ContainerHandle: Send + Sync {
    /// The container's id.
    fn id(&self) -> &str;

    /// The network it was created with: the executor checks each step's
    /// declared network against this.
    fn network(&self) -> Network;

    /// The log file every command's output is appended to.
    fn log_path(&self) -> &Path;

    /// Runs one command and returns its exit code and output.
    async fn exec(&self, spec: &ExecSpec) -> Result<ExecOutput, EngineError>;

    /// Unpacks a tar file (plain, gzip or zstd) at `dest`, which must exist.
    async fn upload_tar_file(&self, tar_path: &Path, dest: &str) -> Result<(), EngineError>;

    /// Puts one file at `dest_dir/name` with the given mode.
    async fn put_file(
        &self,
        dest_dir: &str,
        name: &str,
        contents: &[u8],
        mode: u32,
    ) -> Result<(), EngineError>;

    /// Streams `path` out of the container as a tar archive into `dest_file`.
    async fn copy_out(&self, path: &str, dest_file: &Path) -> Result<u64, EngineError>;

    /// Reads one regular file (following symlinks, at most `limit` bytes).
    async fn read_file(&self, path: &str, limit: u64) -> Result<Vec<u8>, EngineError>;

    /// Commits the container's filesystem as an image tagged `tag`.
    async fn commit(
        &self,
        tag: &str,
        labels: HashMap<String, String>,
    ) -> Result<String, EngineError>;

    /// Force-removes the container. Never fails (see [`Container::remove`]).
    async fn remove(self: Box<Self>);

    /// Creates a directory (and parents) as the container's default user.
    async fn mkdir(&self, dir: &str) -> Result<(), EngineError> {
        let spec = ExecSpec {
            cmd: vec!["mkdir".into(), "-p".into(), dir.into()],
            ..Default::default()
        };
        let out = self.exec(&spec).await?;
        if out.exit_code != 0 {
            return Err(EngineError::Io {
                action: format!("mkdir {dir} in container"),
                source: std::io::Error::other(out.tail.join("\n")),
            });
        }
        Ok(())
    }

    /// Copies a host directory's contents into `dest` (created if missing)
    /// as one tar stream with normalised owners, modes and times.
    async fn copy_dir_in(&self, host_dir: &Path, dest: &str) -> Result<(), EngineError> {
        let tar = super::container::deterministic_dir_tar(host_dir).await?;
        self.mkdir(dest).await?;
        self.upload_tar_file(tar.path(), dest).await
    }

    /// Installs the host's CA bundle at [`CA_PATH`] (see [`super::CA_ENV`]).
    async fn install_ca_bundle(&self, pem: &[u8]) -> Result<(), EngineError> {
        let (dir, name) = CA_PATH.rsplit_once('/').unwrap_or(("/", CA_PATH));
        self.put_file(dir, name, pem, 0o644).await
    }
}

#[async_trait]
impl ContainerEngine for Engine {
    fn kind(&self) -> EngineKind {
        Engine::kind(self)
    }

    fn info(&self) -> EngineInfo {
        Engine::info(self)
    }

    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError> {
        Engine::inspect_image(self, reference).await
    }

    async fn ensure_pinned(
        &self,
        reference: &str,
        hint: Option<String>,
    ) -> Result<ImageInfo, EngineError> {
        Engine::ensure_pinned(self, reference, hint).await
    }

    async fn create_container(
        &self,
        spec: &ContainerSpec,
    ) -> Result<Box<dyn ContainerHandle>, EngineError> {
        Ok(Box::new(Engine::create_container(self, spec).await?))
    }
}

#[async_trait]
impl ContainerHandle for Container {
    fn id(&self) -> &str {
        Container::id(self)
    }

    fn network(&self) -> Network {
        Container::network(self)
    }

    fn log_path(&self) -> &Path {
        Container::log_path(self)
    }

    async fn exec(&self, spec: &ExecSpec) -> Result<ExecOutput, EngineError> {
        Container::exec(self, spec).await
    }

    async fn upload_tar_file(&self, tar_path: &Path, dest: &str) -> Result<(), EngineError> {
        Container::upload_tar_file(self, tar_path, dest).await
    }

    async fn put_file(
        &self,
        dest_dir: &str,
        name: &str,
        contents: &[u8],
        mode: u32,
    ) -> Result<(), EngineError> {
        Container::put_file(self, dest_dir, name, contents, mode).await
    }

    async fn copy_out(&self, path: &str, dest_file: &Path) -> Result<u64, EngineError> {
        Container::copy_out(self, path, dest_file).await
    }

    async fn read_file(&self, path: &str, limit: u64) -> Result<Vec<u8>, EngineError> {
        Container::read_file(self, path, limit).await
    }

    async fn commit(
        &self,
        tag: &str,
        labels: HashMap<String, String>,
    ) -> Result<String, EngineError> {
        Container::commit(self, tag, labels).await
    }

    async fn remove(self: Box<Self>) {
        Container::remove(*self).await
    }
}

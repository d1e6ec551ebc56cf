//! OCI images from bundles, without a Dockerfile or an engine, and their
//! publication to registries.
//!
//! Data flow of `hermetic image`: the bundle (directory or archive) and its
//! `bundle.json` -> [`layers`] splits its files into a runtime, a deps and an
//! app layer -> [`build`] writes those (through `archive`, which owns every
//! determinism rule) plus the recompressed base rootfs, the image config and
//! the manifest into a staged OCI image layout ([`layout`]) -> that layout is
//! renamed into place (`--oci-layout`), turned into a docker-archive and
//! loaded through the engine ([`docker_archive`], `--load`), and/or pushed
//! ([`push`], `--push`).
//!
//! Data flow of `hermetic push`: an OCI layout -> [`reference`] parses the
//! target -> [`registry`] speaks the distribution API (auth from [`auth`],
//! retries, chunked uploads, mounts) -> blobs, the image manifest by digest,
//! its tags, then the SBOM referrer (referrers API or tag fallback).

pub mod auth;
pub mod build;
pub mod docker_archive;
pub mod layers;
pub mod layout;
pub mod push;
pub mod reference;
pub mod registry;

use std::path::PathBuf;

pub use auth::{Credentials, Secret};
pub use build::{BuiltImage, ImageReport, ImageSettings, LayerReport, build_image, image};
pub use layers::LayerRole;
pub use push::{BlobOutcome, BlobReport, PushReport, PushSettings, PushTarget, SbomReport, push};
pub use reference::Reference;
pub use registry::RetryPolicy;

/// Media type of a CycloneDX JSON SBOM (artifact type of the SBOM referrer).
pub const SBOM_ARTIFACT_TYPE: &str = "application/vnd.cyclonedx+json";
/// Annotation keys hermetic sets on manifests and as config labels.
pub mod annotation {
    pub const CREATED: &str = "org.opencontainers.image.created";
    pub const VERSION: &str = "org.opencontainers.image.version";
    pub const REVISION: &str = "org.opencontainers.image.revision";
    pub const SOURCE: &str = "org.opencontainers.image.source";
    pub const TITLE: &str = "org.opencontainers.image.title";
    pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
    pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
    pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
}

/// Errors building, writing, loading and pushing images. Credentials never
/// appear in these messages: only registry, repository and user names.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("{} is not a bundle: {reason}", path.display())]
    NotABundle { path: PathBuf, reason: String },

    #[error("bundle {name} needs glibc {needed}, but base {suite} has glibc {found}")]
    BaseTooOld {
        name: String,
        needed: String,
        suite: String,
        found: String,
    },

    #[error("unknown base {suite}; known bases: {}", known.join(", "))]
    UnknownBase { suite: String, known: Vec<String> },

    #[error("base rootfs tarball {} has sha256 {got}, the catalog lock pins {expected}", path.display())]
    BaseCorrupt {
        path: PathBuf,
        expected: String,
        got: String,
    },

    #[error("base rootfs for {suite}: {source}")]
    Base {
        suite: String,
        #[source]
        source: crate::builder::BuilderError,
    },

    #[error("writing layer {layer}: {source}")]
    Archive {
        layer: String,
        #[source]
        source: crate::archive::ArchiveError,
    },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{} is not a valid OCI image layout: {reason}", path.display())]
    BadLayout { path: PathBuf, reason: String },

    #[error("blob {digest} in {}: {reason}", layout.display())]
    BadBlob {
        layout: PathBuf,
        digest: String,
        reason: String,
    },

    #[error("invalid image reference {reference}: {reason}")]
    BadReference { reference: String, reason: String },

    #[error("--load needs a container engine: {source}")]
    Engine {
        #[source]
        source: crate::engine::EngineError,
    },

    #[error("registry {registry} refused the credentials{} for {repository}", user.as_ref().map(|u| format!(" of user {u}")).unwrap_or_default())]
    Unauthorized {
        registry: String,
        repository: String,
        user: Option<String>,
    },

    #[error("registry {registry} denied {action} on {repository} (HTTP {status})")]
    Denied {
        registry: String,
        repository: String,
        action: String,
        status: u16,
    },

    #[error("registry {registry}: {action} failed with HTTP {status}: {body}")]
    Registry {
        registry: String,
        action: String,
        status: u16,
        body: String,
    },

    #[error("registry {registry}: {action} failed after {attempts} attempt(s): {reason}")]
    Transport {
        registry: String,
        action: String,
        attempts: u32,
        reason: String,
    },

    #[error("registry {registry} answered with an unusable authentication challenge: {challenge}")]
    BadChallenge { registry: String, challenge: String },

    #[error("credential helper docker-credential-{helper} failed for {registry}: {reason}")]
    CredentialHelper {
        helper: String,
        registry: String,
        reason: String,
    },

    #[error("docker config {}: {reason}", path.display())]
    DockerConfig { path: PathBuf, reason: String },

    #[error(transparent)]
    Json(#[from] crate::json::JsonError),

    #[error("manifest of {reference} read back with digest {got}, expected {expected}")]
    DigestMismatch {
        reference: String,
        expected: String,
        got: String,
    },
}

impl OciError {
    /// A line the user can act on.
    pub fn help(&self) -> Option<String> {
        match self {
            OciError::NotABundle { .. } => Some(
                "pass the bundle directory (with share/hermetic/bundle.json) or its archive as `hermetic build` wrote it"
                    .into(),
            ),
            OciError::BaseCorrupt { path, .. } => Some(format!(
                "remove {} and rerun `hermetic images build --base <suite>` to make it again",
                path.display()
            )),
            OciError::BaseTooOld { .. } | OciError::UnknownBase { .. } => Some(
                "choose a base with --base whose glibc is at least the bundle's baseline (see `hermetic images list`)"
                    .into(),
            ),
            OciError::Engine { source } => source.help(),
            OciError::Unauthorized { .. } => Some(
                "check --username/--password-stdin, or the entry for this registry in ~/.docker/config.json (`docker login`)"
                    .into(),
            ),
            OciError::Denied { .. } => Some(
                "the credentials are valid but lack push rights on this repository".into(),
            ),
            OciError::Transport { .. } => Some(
                "the registry is unreachable or dropped the connection; rerun the push: blobs already uploaded are not sent again"
                    .into(),
            ),
            OciError::CredentialHelper { helper, .. } => Some(format!(
                "check that docker-credential-{helper} is on PATH and logged in, or pass --username/--password-stdin"
            )),
            OciError::BadLayout { .. } => Some(
                "pass a directory written by `hermetic image --oci-layout DIR`".into(),
            ),
            _ => None,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> OciError {
        let path = path.into();
        move |source| OciError::Io { path, source }
    }
}

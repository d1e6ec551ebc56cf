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
    /// When the image was made (RFC 3339; the bundle's `SOURCE_DATE_EPOCH`).
    pub const CREATED: &str = "org.opencontainers.image.created";
    /// Version of the packaged software.
    pub const VERSION: &str = "org.opencontainers.image.version";
    /// Source control revision of the packaged software.
    pub const REVISION: &str = "org.opencontainers.image.revision";
    /// URL of the source of the packaged software.
    pub const SOURCE: &str = "org.opencontainers.image.source";
    /// Human-readable title of the image.
    pub const TITLE: &str = "org.opencontainers.image.title";
    /// Digest of the base image's manifest.
    pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
    /// Reference of the base image.
    pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
    /// The name of a manifest in an OCI layout's index (its tag).
    pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
}

/// Errors building, writing, loading and pushing images. Credentials never
/// appear in these messages: only registry, repository and user names.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The path is not a hermetic bundle.
    #[error("{} is not a bundle: {reason}", path.display())]
    NotABundle {
        /// The path given.
        path: PathBuf,
        /// What it lacks.
        reason: String,
    },

    /// The base's glibc is older than the bundle's baseline.
    #[error("bundle {name} needs glibc {needed}, but base {suite} has glibc {found}")]
    BaseTooOld {
        /// The bundle.
        name: String,
        /// The glibc the bundle needs.
        needed: String,
        /// The base, by Debian suite.
        suite: String,
        /// The glibc the base has.
        found: String,
    },

    /// The catalog has no base for the suite asked for.
    #[error("unknown base {suite}; known bases: {}", known.join(", "))]
    UnknownBase {
        /// The suite asked for.
        suite: String,
        /// The suites the catalog has.
        known: Vec<String>,
    },

    /// A base root file system tarball does not have the hash the catalog lock pins.
    #[error("base rootfs tarball {} has sha256 {got}, the catalog lock pins {expected}", path.display())]
    BaseCorrupt {
        /// The tarball.
        path: PathBuf,
        /// The hex SHA-256 pinned.
        expected: String,
        /// The hex SHA-256 it has.
        got: String,
    },

    /// The base root file system could not be made or fetched.
    #[error("base rootfs for {suite}: {source}")]
    Base {
        /// The base, by Debian suite.
        suite: String,
        /// What went wrong.
        #[source]
        source: crate::builder::BuilderError,
    },

    /// A layer could not be written.
    #[error("writing layer {layer}: {source}")]
    Archive {
        /// Which layer.
        layer: String,
        /// What went wrong.
        #[source]
        source: crate::archive::ArchiveError,
    },

    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A directory is not a valid OCI image layout.
    #[error("{} is not a valid OCI image layout: {reason}", path.display())]
    BadLayout {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A blob of a layout is missing or does not match its digest.
    #[error("blob {digest} in {}: {reason}", layout.display())]
    BadBlob {
        /// The layout directory.
        layout: PathBuf,
        /// The blob's digest.
        digest: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An image reference does not parse.
    #[error("invalid image reference {reference}: {reason}")]
    BadReference {
        /// The reference given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },

    /// `--load` could not reach a container engine.
    #[error("--load needs a container engine: {source}")]
    Engine {
        /// The engine error.
        #[source]
        source: crate::engine::EngineError,
    },

    /// The registry wants credentials and refused those given, or none were given.
    #[error("registry {registry} refused the credentials{} for {repository}", user.as_ref().map(|u| format!(" of user {u}")).unwrap_or_default())]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// The repository.
        repository: String,
        /// The user the credentials were for, if any.
        user: Option<String>,
    },

    /// The registry denied an action on a repository (HTTP 403).
    #[error("registry {registry} denied {action} on {repository} (HTTP {status})")]
    Denied {
        /// The registry host.
        registry: String,
        /// The repository.
        repository: String,
        /// What was asked, e.g. a blob upload.
        action: String,
        /// The HTTP status.
        status: u16,
    },

    /// The registry answered a request with an error status.
    #[error("registry {registry}: {action} failed with HTTP {status}: {body}")]
    Registry {
        /// The registry host.
        registry: String,
        /// What was asked.
        action: String,
        /// The HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
    },

    /// A request to the registry failed below HTTP, after retries.
    #[error("registry {registry}: {action} failed after {attempts} attempt(s): {reason}")]
    Transport {
        /// The registry host.
        registry: String,
        /// What was asked.
        action: String,
        /// How many times it was tried.
        attempts: u32,
        /// The last failure.
        reason: String,
    },

    /// The registry's `WWW-Authenticate` challenge is not one hermetic can answer.
    #[error("registry {registry} answered with an unusable authentication challenge: {challenge}")]
    BadChallenge {
        /// The registry host.
        registry: String,
        /// The challenge as sent, or what is wrong with it.
        challenge: String,
    },

    /// A `docker-credential-*` helper failed.
    #[error("credential helper docker-credential-{helper} failed for {registry}: {reason}")]
    CredentialHelper {
        /// The helper's suffix (`docker-credential-<helper>`).
        helper: String,
        /// The registry host.
        registry: String,
        /// What went wrong.
        reason: String,
    },

    /// The Docker config file could not be read or parsed.
    #[error("docker config {}: {reason}", path.display())]
    DockerConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A JSON document could not be written.
    #[error(transparent)]
    Json(#[from] crate::json::JsonError),

    /// A pushed manifest read back with another digest.
    #[error("manifest of {reference} read back with digest {got}, expected {expected}")]
    DigestMismatch {
        /// The reference pushed.
        reference: String,
        /// The digest pushed.
        expected: String,
        /// The digest read back.
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

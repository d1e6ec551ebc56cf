//! The container engine layer: the only code that imports bollard.
//!
//! Data flow: [`connect`] finds a Docker or Podman socket, checks it answers,
//! tells the two apart from `/version`, and negotiates the API version. The
//! resulting [`Engine`] creates labelled containers ([`container`]), moves
//! files in and out of them as tar streams (no bind mounts, so a remote
//! engine works too), and imports, builds, pulls and inspects images
//! ([`image`]). Every container is registered while it lives so that a
//! Ctrl-C or SIGTERM can remove it ([`cleanup_live_containers`]); `hermetic gc`
//! removes leftovers of processes that were killed outright.

mod api;
mod connect;
mod container;
pub mod fake;
mod image;
mod stream;

use std::path::PathBuf;
use std::time::Duration;

pub use api::{ContainerEngine, ContainerHandle};
pub use connect::{ConnectOptions, EngineEndpoint, TlsEnv, TlsFiles, candidate_endpoints, connect};
pub use container::{
    CA_ENV, CA_PATH, Container, ContainerSpec, ExecOutput, ExecSpec, GcReport, LABEL_OWNER,
    Network, cleanup_live_containers, owner_is_alive, owner_label,
};
pub use image::{BuildImageSpec, ImageInfo, split_pinned};

/// Label set on every container hermetic creates; its value is the build id.
pub const LABEL_BUILD_ID: &str = "io.hermetic.build-id";
/// Label naming what a container or image is for (e.g. `fetch`, `build`, `builder`).
pub const LABEL_ROLE: &str = "io.hermetic.role";

/// Which engine answers on the socket. Differences between them live in the
/// capability methods below, never in string checks at call sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Docker Engine (or a Docker-API engine that does not say it is Podman).
    Docker,
    /// Podman's Docker-compatible API service.
    Podman,
}

impl EngineKind {
    /// The engine-neutral form of a name [`local_image_name`] made: what
    /// goes into outputs, so the same build gives the same bytes on Docker
    /// and on Podman.
    ///
    /// [`local_image_name`]: EngineKind::local_image_name
    pub fn portable_name(self, name: &str) -> String {
        match self {
            EngineKind::Docker => name.to_string(),
            EngineKind::Podman => name.strip_prefix("localhost/").unwrap_or(name).to_string(),
        }
    }

    /// Whether an engine's error answer to a non-forced image removal means
    /// "refused, the image is still wanted" rather than a failure. Docker
    /// answers 409 Conflict both for an image a container uses and for one
    /// removed by ID that has several tags; Podman 4.3 answers 409 for the
    /// first but 500 for the second ("unable to delete image … by ID with
    /// more than one tag … please force removal").
    pub fn refuses_removal(self, status: u16, message: &str) -> bool {
        match self {
            EngineKind::Docker => status == 409,
            EngineKind::Podman => {
                status == 409 || (status == 500 && message.contains("more than one tag"))
            }
        }
    }

    /// Podman stores unqualified local names under `localhost/`; Docker does not.
    pub fn local_image_name(self, name: &str) -> String {
        match self {
            EngineKind::Docker => name.to_string(),
            EngineKind::Podman
                if name.contains('/')
                    && name
                        .split('/')
                        .next()
                        .is_some_and(|h| h.contains('.') || h == "localhost") =>
            {
                name.to_string()
            }
            EngineKind::Podman => format!("localhost/{name}"),
        }
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EngineKind::Docker => "docker",
            EngineKind::Podman => "podman",
        })
    }
}

/// A connected, version-negotiated container engine.
#[derive(Clone)]
pub struct Engine {
    docker: bollard::Docker,
    kind: EngineKind,
    endpoint: EngineEndpoint,
    server_version: String,
    api_version: String,
    stream_output: bool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("kind", &self.kind)
            .field("endpoint", &self.endpoint)
            .field("server_version", &self.server_version)
            .field("api_version", &self.api_version)
            .finish()
    }
}

/// Facts about the engine, for `--json` output and build records.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EngineInfo {
    /// Docker or Podman.
    pub kind: EngineKind,
    /// The endpoint connected to.
    pub endpoint: String,
    /// Whether the connection to the engine is TLS (a `tcp://` endpoint
    /// with `DOCKER_TLS_VERIFY`).
    pub tls: bool,
    /// The engine's own version.
    pub server_version: String,
    /// The API version spoken.
    pub api_version: String,
}

impl Engine {
    /// Which engine this is.
    pub fn kind(&self) -> EngineKind {
        self.kind
    }

    /// Facts about the engine.
    pub fn info(&self) -> EngineInfo {
        EngineInfo {
            kind: self.kind,
            endpoint: self.endpoint.to_string(),
            tls: self.endpoint.is_tls(),
            server_version: self.server_version.clone(),
            api_version: self.api_version.clone(),
        }
    }

    /// Names this engine's image lock: its kind and a hash of its endpoint
    /// (a local Docker, a Podman service and a remote engine each hold
    /// their own images).
    pub fn lock_key(&self) -> String {
        use sha2::Digest;
        let hash = sha2::Sha256::digest(self.endpoint.to_string().as_bytes());
        format!("{}-{}", self.kind, &hex::encode(hash)[..12])
    }

    /// Show container output on stderr as it arrives (`-v`). It is always
    /// written to the run's log file regardless.
    pub fn set_stream_output(&mut self, on: bool) {
        self.stream_output = on;
    }
}

/// Errors talking to the container engine. Each names the thing involved.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No endpoint tried answered.
    #[error("no container engine reachable; tried {}", tried.join(", "))]
    NotReachable {
        /// The endpoints tried, in order, each with why it failed.
        tried: Vec<String>,
    },

    /// The engine at an endpoint could not be connected to.
    #[error("cannot connect to the container engine at {endpoint}: {reason}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// Why not.
        reason: String,
    },

    /// A TLS client file (CA, certificate or key) could not be used.
    #[error("cannot connect to the container engine at {endpoint}: TLS client file {}: {reason}", path.display())]
    TlsFile {
        /// The endpoint.
        endpoint: String,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The TLS handshake or the TLS setup failed.
    #[error("cannot connect to the container engine at {endpoint} over TLS: {reason}")]
    Tls {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },

    /// The endpoint answers only TLS, and TLS was not asked for.
    #[error("the container engine at {endpoint} only speaks TLS, and DOCKER_TLS_VERIFY is not set")]
    PlainToTls {
        /// The endpoint.
        endpoint: String,
    },

    /// The engine could not be reached through `ssh`.
    #[error("cannot reach the container engine at {endpoint} through ssh: {reason}")]
    Ssh {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },

    /// The socket exists but this user may not open it.
    #[error("permission denied on the engine socket {socket}")]
    PermissionDenied {
        /// The socket.
        socket: PathBuf,
    },

    /// The engine did not answer `/_ping` in time.
    #[error("engine at {endpoint} did not answer within {}s", timeout.as_secs())]
    Timeout {
        /// The endpoint.
        endpoint: String,
        /// How long was waited.
        timeout: Duration,
    },

    /// The engine answered `/_ping` but not `/version` in time.
    #[error("engine at {endpoint} answered /_ping but not /version within {}s", timeout.as_secs())]
    Unresponsive {
        /// The endpoint.
        endpoint: String,
        /// How long was waited.
        timeout: Duration,
    },

    /// An image is not in the engine and could not be pulled.
    #[error("image {reference} is not present and could not be pulled: {reason}")]
    ImageUnavailable {
        /// The image reference.
        reference: String,
        /// Why the pull failed.
        reason: String,
        /// What the user can do about it, when known.
        hint: Option<String>,
    },

    /// A pulled image does not have the digest its reference pins.
    #[error("pulled image {reference} has digest(s) {}, not the pinned {expected}", got.join(", "))]
    DigestMismatch {
        /// The pinned reference.
        reference: String,
        /// The digest pinned.
        expected: String,
        /// The digests the pulled image has.
        got: Vec<String>,
    },

    /// A reference that must be pinned has no `@sha256:` digest.
    #[error("image reference {reference} is not pinned by digest (expected name@sha256:<64 hex>)")]
    NotPinned {
        /// The reference.
        reference: String,
    },

    /// A Dockerfile build failed.
    #[error("building image {tag} failed: {reason} (log: {})", log.display())]
    Build {
        /// The tag being built.
        tag: String,
        /// Why it failed.
        reason: String,
        /// The log file with the build's output.
        log: PathBuf,
    },

    /// Importing a root file system tarball as an image failed.
    #[error("importing rootfs {} as {tag} failed: {reason}", tarball.display())]
    Import {
        /// The tarball.
        tarball: PathBuf,
        /// The tag it was to get.
        tag: String,
        /// Why it failed.
        reason: String,
    },

    /// An engine request about a container failed.
    #[error("container {container}: {action} failed: {source}")]
    Container {
        /// The container's ID or name.
        container: String,
        /// What was being done, e.g. `start`.
        action: &'static str,
        /// The engine client's error.
        #[source]
        source: Box<bollard::errors::Error>,
    },

    /// A path asked for is not in the container.
    #[error("{path} not found in container {container}")]
    PathNotFound {
        /// The container's ID or name.
        container: String,
        /// The path.
        path: String,
    },

    /// An engine request not about one container failed.
    #[error("engine request {action} failed: {source}")]
    Api {
        /// What was being done.
        action: &'static str,
        /// The engine client's error.
        #[source]
        source: Box<bollard::errors::Error>,
    },

    /// Local I/O for an engine operation failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done, naming the file.
        action: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl EngineError {
    /// A line the user can act on.
    pub fn help(&self) -> Option<String> {
        match self {
            EngineError::NotReachable { .. } | EngineError::Connect { .. } | EngineError::Timeout { .. } => Some(
                "start an engine (`systemctl start docker`, `dockerd &`, or `podman system service --time=0 &`) \
                 or point hermetic at one with --engine-socket, DOCKER_HOST or CONTAINER_HOST"
                    .into(),
            ),
            EngineError::TlsFile { .. } | EngineError::PlainToTls { .. } => Some(
                "a TLS engine needs DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH (default ~/.docker) \
                 holding ca.pem (the CA that signed the engine's certificate), cert.pem and key.pem \
                 (the client certificate the engine accepts and its key)"
                    .into(),
            ),
            EngineError::Tls { .. } => Some(
                "check that DOCKER_CERT_PATH holds the CA that signed this engine's certificate \
                 and a client certificate the engine accepts, and that the engine's certificate \
                 names the host in DOCKER_HOST"
                    .into(),
            ),
            EngineError::Ssh { .. } => Some(
                "hermetic runs `ssh` in batch mode (keys from ssh-agent or ~/.ssh/config, no \
                 password prompt) and `docker system dial-stdio` on the remote host, which needs \
                 the docker CLI there. Or forward the engine's socket yourself: `ssh -nNT -L \
                 /tmp/engine.sock:/var/run/docker.sock user@host &` and \
                 DOCKER_HOST=unix:///tmp/engine.sock"
                    .into(),
            ),
            EngineError::Unresponsive { .. } => Some(
                "the engine is running but overloaded or stuck: check its log (`journalctl -u \
                 docker`, Podman's service log) and try again"
                    .into(),
            ),
            EngineError::PermissionDenied { .. } => Some(
                "run as a user in the `docker` group (or root), or use a rootless Podman socket \
                 ($XDG_RUNTIME_DIR/podman/podman.sock)"
                    .into(),
            ),
            EngineError::ImageUnavailable { hint, .. } => hint.clone(),
            EngineError::Build { .. } => Some("rerun with -v to see the build output as it runs".into()),
            _ => None,
        }
    }

    fn api(action: &'static str) -> impl FnOnce(bollard::errors::Error) -> EngineError {
        move |source| EngineError::Api {
            action,
            source: Box::new(source),
        }
    }
}

/// True when a bollard error is the engine's 404 (no such image/container/path).
fn is_not_found(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::EngineKind;

    #[test]
    fn removal_refusals_by_engine() {
        let podman_multi_tag = "unable to delete image \"0847de\" by ID with more than one tag \
                                ([localhost/a:1 localhost/a:2]): please force removal";
        assert!(EngineKind::Docker.refuses_removal(409, "conflict"));
        assert!(!EngineKind::Docker.refuses_removal(500, podman_multi_tag));
        assert!(EngineKind::Podman.refuses_removal(409, "image is in use by a container"));
        assert!(EngineKind::Podman.refuses_removal(500, podman_multi_tag));
        // Any other 500 is a real failure on both.
        assert!(!EngineKind::Podman.refuses_removal(500, "storage is corrupted"));
    }

    #[test]
    fn local_names_round_trip_to_the_same_portable_name() {
        for kind in [EngineKind::Docker, EngineKind::Podman] {
            let local = kind.local_image_name("hermetic/builder:glibc2.31-abc");
            assert_eq!(kind.portable_name(&local), "hermetic/builder:glibc2.31-abc");
        }
        assert_eq!(
            EngineKind::Podman.local_image_name("hermetic/base:trixie"),
            "localhost/hermetic/base:trixie"
        );
        // Registry names are left alone.
        let pinned = "localhost:5000/app@sha256:00";
        assert_eq!(EngineKind::Podman.portable_name(pinned), pinned);
    }
}

//! Finding and connecting to the engine.
//!
//! Precedence (CLI > environment > defaults): `--engine-socket`, then
//! `DOCKER_HOST`, then `CONTAINER_HOST`, then the default sockets
//! `/var/run/docker.sock`, `/run/podman/podman.sock` and
//! `$XDG_RUNTIME_DIR/podman/podman.sock`. An endpoint named explicitly (flag
//! or environment) is the only one tried: silently falling back to another
//! engine would build against images the user did not mean.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, Docker};
use tracing::{debug, instrument};

use super::{Engine, EngineError, EngineKind};

/// How long to wait for the engine to answer `/_ping` (is anything there?).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an engine that answered `/_ping` gets for `/version`: Podman's
/// takes 1.6 to 2.8 s under load.
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);
/// Per-request timeout for everything else (image builds can be long).
const REQUEST_TIMEOUT_SECS: u64 = 3600;

/// Where to look for the engine.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--engine-socket`: a path, `unix://path` or `tcp://host:port`.
    pub socket: Option<String>,
}

/// One place an engine may listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEndpoint {
    Unix(PathBuf),
    Tcp(String),
}

impl std::fmt::Display for EngineEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineEndpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            EngineEndpoint::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

impl EngineEndpoint {
    /// Parses `unix:///path`, `/path`, `tcp://host:port` or `http://host:port`.
    pub fn parse(value: &str) -> Result<Self, EngineError> {
        if let Some(path) = value.strip_prefix("unix://") {
            Ok(EngineEndpoint::Unix(PathBuf::from(path)))
        } else if let Some(addr) = value
            .strip_prefix("tcp://")
            .or_else(|| value.strip_prefix("http://"))
        {
            Ok(EngineEndpoint::Tcp(addr.to_string()))
        } else if value.starts_with('/') {
            Ok(EngineEndpoint::Unix(PathBuf::from(value)))
        } else {
            Err(EngineError::Connect {
                endpoint: value.to_string(),
                reason: "unsupported scheme (use unix:///path/to.sock or tcp://host:port)".into(),
            })
        }
    }
}

/// The endpoints to try, in order, and whether they were named explicitly.
pub fn candidate_endpoints(
    opts: &ConnectOptions,
) -> Result<(Vec<EngineEndpoint>, bool), EngineError> {
    let explicit = opts
        .socket
        .clone()
        .or_else(|| non_empty_env("DOCKER_HOST"))
        .or_else(|| non_empty_env("CONTAINER_HOST"));
    if let Some(value) = explicit {
        return Ok((vec![EngineEndpoint::parse(&value)?], true));
    }
    let mut defaults = vec![
        EngineEndpoint::Unix(PathBuf::from("/var/run/docker.sock")),
        EngineEndpoint::Unix(PathBuf::from("/run/podman/podman.sock")),
    ];
    if let Some(runtime) = non_empty_env("XDG_RUNTIME_DIR") {
        defaults.push(EngineEndpoint::Unix(
            Path::new(&runtime).join("podman/podman.sock"),
        ));
    }
    Ok((defaults, false))
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Connects to the first engine that answers, tells Docker from Podman and
/// negotiates the API version.
#[instrument(skip_all)]
pub async fn connect(opts: &ConnectOptions) -> Result<Engine, EngineError> {
    let (candidates, explicit) = candidate_endpoints(opts)?;
    let mut tried = Vec::new();
    for endpoint in &candidates {
        match connect_one(endpoint).await {
            Ok(engine) => return Ok(engine),
            // A named endpoint that fails is reported as it is; for the
            // defaults, a missing socket just means "try the next one".
            Err(e) if explicit => return Err(e),
            Err(EngineError::PermissionDenied { socket }) => {
                return Err(EngineError::PermissionDenied { socket });
            }
            Err(e) => {
                debug!(%endpoint, error = %e, "engine candidate failed");
                tried.push(format!("{endpoint} ({})", short_reason(&e)));
            }
        }
    }
    Err(EngineError::NotReachable { tried })
}

fn short_reason(e: &EngineError) -> String {
    match e {
        EngineError::Connect { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

async fn connect_one(endpoint: &EngineEndpoint) -> Result<Engine, EngineError> {
    let docker = match endpoint {
        EngineEndpoint::Unix(path) => {
            probe_unix_socket(path)?;
            let path = path.to_string_lossy();
            Docker::connect_with_unix(&path, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
        }
        EngineEndpoint::Tcp(addr) => {
            Docker::connect_with_http(addr, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
        }
    }
    .map_err(|e| EngineError::Connect {
        endpoint: endpoint.to_string(),
        reason: e.to_string(),
    })?;

    let connect_err = |e: bollard::errors::Error| EngineError::Connect {
        endpoint: endpoint.to_string(),
        reason: plain_reason(&e),
    };
    // Liveness first, quickly; then an engine that answered gets time.
    tokio::time::timeout(CONNECT_TIMEOUT, docker.ping())
        .await
        .map_err(|_| EngineError::Timeout {
            endpoint: endpoint.to_string(),
            timeout: CONNECT_TIMEOUT,
        })?
        .map_err(connect_err)?;
    let slow = |_| EngineError::Unresponsive {
        endpoint: endpoint.to_string(),
        timeout: VERSION_TIMEOUT,
    };
    let docker = tokio::time::timeout(VERSION_TIMEOUT, docker.negotiate_version())
        .await
        .map_err(slow)?
        .map_err(connect_err)?;
    let version = tokio::time::timeout(VERSION_TIMEOUT, docker.version())
        .await
        .map_err(slow)?
        .map_err(connect_err)?;

    let kind = if version
        .components
        .iter()
        .flatten()
        .any(|c| c.name.to_ascii_lowercase().contains("podman"))
    {
        EngineKind::Podman
    } else {
        EngineKind::Docker
    };
    let api_version = docker.client_version().to_string();
    debug!(%endpoint, %kind, api = %api_version, "connected to engine");
    Ok(Engine {
        docker,
        kind,
        endpoint: endpoint.clone(),
        server_version: version.version.unwrap_or_default(),
        api_version,
        stream_output: false,
    })
}

/// Classifies a Unix socket before bollard touches it, so the user hears
/// "permission denied" or "nothing listening" rather than a generic HTTP error.
fn probe_unix_socket(path: &Path) -> Result<(), EngineError> {
    use std::os::unix::fs::FileTypeExt;
    // connect(2) on a regular file says "connection refused", on a directory
    // the same: name what is really there instead.
    if let Ok(meta) = std::fs::metadata(path) {
        let what = if meta.is_dir() {
            Some("a directory")
        } else if meta.file_type().is_socket() {
            None
        } else if meta.is_file() {
            Some("a regular file")
        } else {
            Some("not a socket")
        };
        if let Some(what) = what {
            return Err(EngineError::Connect {
                endpoint: format!("unix://{}", path.display()),
                reason: format!("{} is {what}, not a socket", path.display()),
            });
        }
    }
    match UnixStream::connect(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(EngineError::PermissionDenied {
                socket: path.to_path_buf(),
            })
        }
        Err(e) => Err(EngineError::Connect {
            endpoint: format!("unix://{}", path.display()),
            reason: match e.kind() {
                std::io::ErrorKind::NotFound => "no such socket".into(),
                std::io::ErrorKind::ConnectionRefused => "nothing is listening".into(),
                _ => e.to_string(),
            },
        }),
    }
}

/// What failed, in the user's words: the innermost I/O error of a client
/// error ("connection refused"), not the HTTP client's layers of wrapping
/// ("error trying to connect: tcp connect error: …"); else the error itself.
fn plain_reason(e: &(dyn std::error::Error + 'static)) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut io = None;
    while let Some(err) = source {
        if let Some(e) = err.downcast_ref::<std::io::Error>() {
            io = Some(e);
        }
        source = err.source();
    }
    match io.map(|e| (e.kind(), e)) {
        Some((std::io::ErrorKind::ConnectionRefused, _)) => {
            "nothing is listening (connection refused)".into()
        }
        Some((std::io::ErrorKind::NotFound, _)) => "no such socket".into(),
        Some((std::io::ErrorKind::TimedOut, _)) => "the connection timed out".into(),
        Some((std::io::ErrorKind::ConnectionReset, _)) => "the engine closed the connection".into(),
        Some((_, e)) => e.to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_or_directory_at_the_socket_path_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = probe_unix_socket(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is a directory, not a socket"), "{err}");
        let file = dir.path().join("docker.sock");
        std::fs::write(&file, b"").unwrap();
        let err = probe_unix_socket(&file).unwrap_err().to_string();
        assert!(err.contains("is a regular file, not a socket"), "{err}");
        assert!(err.contains("unix://"), "{err}");
    }

    #[tokio::test]
    async fn a_refused_tcp_connection_says_so_plainly() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = EngineEndpoint::Tcp(format!("127.0.0.1:{port}"));
        let err = connect_one(&endpoint).await.unwrap_err().to_string();
        assert!(err.contains(&format!("tcp://127.0.0.1:{port}")), "{err}");
        assert!(err.contains("connection refused"), "{err}");
        assert!(!err.contains("error trying to connect"), "{err}");
    }

    #[test]
    fn parses_endpoint_forms() {
        assert_eq!(
            EngineEndpoint::parse("/run/x.sock").unwrap(),
            EngineEndpoint::Unix("/run/x.sock".into())
        );
        assert_eq!(
            EngineEndpoint::parse("unix:///run/x.sock").unwrap(),
            EngineEndpoint::Unix("/run/x.sock".into())
        );
        assert_eq!(
            EngineEndpoint::parse("tcp://127.0.0.1:2375").unwrap(),
            EngineEndpoint::Tcp("127.0.0.1:2375".into())
        );
        assert!(EngineEndpoint::parse("ssh://host").is_err());
    }

    #[test]
    fn flag_wins_over_environment() {
        let opts = ConnectOptions {
            socket: Some("/tmp/flag.sock".into()),
        };
        let (c, explicit) = candidate_endpoints(&opts).unwrap();
        assert!(explicit);
        assert_eq!(c, vec![EngineEndpoint::Unix("/tmp/flag.sock".into())]);
    }

    #[test]
    fn missing_socket_is_reported_as_such() {
        let err = probe_unix_socket(Path::new("/nonexistent/hermetic.sock")).unwrap_err();
        assert!(err.to_string().contains("no such socket"), "{err}");
    }
}

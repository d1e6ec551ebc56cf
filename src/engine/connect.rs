//! Finding and connecting to the engine.
//!
//! Precedence (CLI > environment > defaults): `--engine-socket`, then
//! `DOCKER_HOST`, then `CONTAINER_HOST`, then the default sockets
//! `/var/run/docker.sock`, `/run/podman/podman.sock` and
//! `$XDG_RUNTIME_DIR/podman/podman.sock`. An endpoint named explicitly (flag
//! or environment) is the only one tried: silently falling back to another
//! engine would build against images the user did not mean.
//!
//! Remote engines are reached the way Docker's own clients reach them:
//! `tcp://host:port` is plain HTTP unless `DOCKER_TLS_VERIFY` is set (to
//! anything but the empty string, as Docker reads it), in which case the
//! connection is TLS with the client certificate, key and CA in
//! `DOCKER_CERT_PATH` (default `~/.docker`) as `cert.pem`, `key.pem` and
//! `ca.pem`; the same variables apply to `--engine-socket tcp://…`.
//! `ssh://user@host` runs the system `ssh` (batch mode, so keys come
//! from ssh-agent or `~/.ssh/config`) and `docker system dial-stdio` on the
//! remote host. The TLS files are read and parsed before the first request,
//! so a missing or broken one is named by its path, and connection failures
//! are described from the innermost cause (refused, TLS alert, certificate
//! not trusted), not from the HTTP client's wrapper.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, Docker};
use tracing::{debug, instrument};

use super::{Engine, EngineError, EngineKind};

/// How long to wait for the engine to answer `/_ping` (is anything there?).
/// An ssh endpoint gets longer: its first request starts an ssh master.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const SSH_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an engine that answered `/_ping` gets for `/version`: Podman's
/// takes 1.6 to 2.8 s under load.
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);
/// Per-request timeout for everything else (image builds can be long).
const REQUEST_TIMEOUT_SECS: u64 = 3600;
/// Docker's ports for `tcp://host` without one.
const DOCKER_PLAIN_PORT: u16 = 2375;
const DOCKER_TLS_PORT: u16 = 2376;

/// Where to look for the engine.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--engine-socket`: a path, `unix://path`, `tcp://host:port` or
    /// `ssh://user@host`.
    pub socket: Option<String>,
    /// Docker's TLS variables; `None` reads them from the environment
    /// (what the CLI does), `Some` lets a caller give them explicitly.
    pub tls: Option<TlsEnv>,
}

/// The TLS client files of a `tcp://` endpoint (Docker's names for them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `DOCKER_CERT_PATH`, else `~/.docker`.
    pub dir: PathBuf,
}

impl TlsFiles {
    /// The CA that signed the engine's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    /// The client certificate the engine checks.
    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }
    /// The client certificate's private key.
    pub fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// Reads and parses each file, so a missing or broken one is reported
    /// by its path before any connection is tried (bollard reads the client
    /// pair lazily during the handshake and, failing, sends no certificate:
    /// the user would only hear the engine's alert).
    fn check(&self, endpoint: &str) -> Result<(), EngineError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let bad = |path: PathBuf, reason: String| EngineError::TlsFile {
            endpoint: endpoint.to_string(),
            path,
            reason,
        };
        for path in [self.ca(), self.cert()] {
            let certs = CertificateDer::pem_file_iter(&path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| bad(path.clone(), pem_reason(&e, "certificate")))?;
            if certs.is_empty() {
                return Err(bad(path, "holds no PEM certificate".into()));
            }
        }
        let key = self.key();
        PrivateKeyDer::from_pem_file(&key).map_err(|e| bad(key.clone(), pem_reason(&e, "key")))?;
        Ok(())
    }
}

fn pem_reason(e: &rustls::pki_types::pem::Error, what: &str) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => "no such file".into(),
        Error::Io(io) => io.to_string(),
        Error::NoItemsFound => format!("holds no PEM {what}"),
        other => format!("not a valid PEM {what} ({other:?})"),
    }
}

/// The TLS variables Docker's clients read, as this process sees them.
#[derive(Debug, Clone, Default)]
pub struct TlsEnv {
    /// `DOCKER_TLS_VERIFY` is set and not empty.
    pub verify: bool,
    /// `DOCKER_TLS` is set and not empty (TLS without checking the engine).
    pub tls_only: bool,
    /// `DOCKER_CERT_PATH`.
    pub cert_path: Option<PathBuf>,
    /// `$HOME`, for the default `~/.docker`.
    pub home: Option<PathBuf>,
}

impl TlsEnv {
    /// Reads `DOCKER_TLS_VERIFY`, `DOCKER_TLS`, `DOCKER_CERT_PATH` and `HOME`.
    pub fn from_env() -> Self {
        TlsEnv {
            verify: non_empty_env("DOCKER_TLS_VERIFY").is_some(),
            tls_only: non_empty_env("DOCKER_TLS").is_some(),
            cert_path: non_empty_env("DOCKER_CERT_PATH").map(PathBuf::from),
            home: non_empty_env("HOME").map(PathBuf::from),
        }
    }

    fn files(&self) -> TlsFiles {
        let dir = self.cert_path.clone().unwrap_or_else(|| {
            self.home
                .clone()
                .unwrap_or_else(|| PathBuf::from("/"))
                .join(".docker")
        });
        TlsFiles { dir }
    }
}

/// One place an engine may listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEndpoint {
    /// A Unix socket.
    Unix(PathBuf),
    /// `host:port` over TCP, with TLS when `tls` names the client files.
    Tcp {
        /// `host:port`.
        addr: String,
        /// The client files, when the connection is TLS.
        tls: Option<TlsFiles>,
    },
    /// `[user@]host` through the system `ssh` (a port comes from
    /// `~/.ssh/config`).
    Ssh(String),
}

impl std::fmt::Display for EngineEndpoint {
    /// The endpoint as the user names it (`tcp://host:port` with or
    /// without TLS: [`EngineEndpoint::is_tls`] says which).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineEndpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            EngineEndpoint::Tcp { addr, .. } => write!(f, "tcp://{addr}"),
            EngineEndpoint::Ssh(dest) => write!(f, "ssh://{dest}"),
        }
    }
}

impl EngineEndpoint {
    /// Parses `unix:///path`, `/path`, `tcp://host[:port]`, `http://…`
    /// (always plain), `https://…` (always TLS) or `ssh://[user@]host`;
    /// a `tcp://` endpoint uses TLS when `tls` says Docker's variables ask
    /// for it.
    pub fn parse(value: &str, tls: &TlsEnv) -> Result<Self, EngineError> {
        let unsupported = |reason: String| EngineError::Connect {
            endpoint: value.to_string(),
            reason,
        };
        if let Some(path) = value.strip_prefix("unix://") {
            return Ok(EngineEndpoint::Unix(PathBuf::from(path)));
        }
        if value.starts_with('/') {
            return Ok(EngineEndpoint::Unix(PathBuf::from(value)));
        }
        if let Some(dest) = value.strip_prefix("ssh://") {
            let dest = dest.trim_end_matches('/');
            if dest.is_empty() || dest.contains('/') {
                return Err(unsupported(
                    "an ssh endpoint is ssh://[user@]host, without a path".into(),
                ));
            }
            // bollard 0.21 hands ssh the URL's authority, and ssh reads
            // `host:port` as a host name: refuse rather than fail obscurely.
            let host = dest.rsplit_once('@').map_or(dest, |(_, h)| h);
            if let Some((name, port)) = host.rsplit_once(':') {
                return Err(unsupported(format!(
                    "ssh endpoints cannot carry a port here; give the port in ~/.ssh/config \
                     (`Host {name}` / `Port {port}`) and use ssh://{}",
                    dest.trim_end_matches(&format!(":{port}"))
                )));
            }
            return Ok(EngineEndpoint::Ssh(dest.to_string()));
        }
        let (rest, use_tls) = if let Some(rest) = value.strip_prefix("tcp://") {
            if tls.tls_only && !tls.verify {
                return Err(unsupported(
                    "DOCKER_TLS without DOCKER_TLS_VERIFY (TLS that does not check the engine's \
                     certificate) is not supported; set DOCKER_TLS_VERIFY=1"
                        .into(),
                ));
            }
            (rest, tls.verify)
        } else if let Some(rest) = value.strip_prefix("https://") {
            (rest, true)
        } else if let Some(rest) = value.strip_prefix("http://") {
            (rest, false)
        } else {
            return Err(unsupported(
                "unsupported scheme (use unix:///path/to.sock, tcp://host:port or ssh://user@host)"
                    .into(),
            ));
        };
        let host = rest.trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(unsupported(
                "a tcp endpoint is tcp://host[:port], without a path".into(),
            ));
        }
        let has_port = host
            .rsplit_once(':')
            .is_some_and(|(h, p)| !p.is_empty() && !h.ends_with(':') && p.parse::<u16>().is_ok());
        let addr = if has_port {
            host.to_string()
        } else {
            let port = if use_tls {
                DOCKER_TLS_PORT
            } else {
                DOCKER_PLAIN_PORT
            };
            format!("{host}:{port}")
        };
        Ok(EngineEndpoint::Tcp {
            addr,
            tls: use_tls.then(|| tls.files()),
        })
    }

    /// Whether requests to this endpoint go over TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, EngineEndpoint::Tcp { tls: Some(_), .. })
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
        let tls = opts.tls.clone().unwrap_or_else(TlsEnv::from_env);
        return Ok((vec![EngineEndpoint::parse(&value, &tls)?], true));
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

/// A bollard client for the endpoint (nothing is sent yet).
fn client(endpoint: &EngineEndpoint) -> Result<Docker, EngineError> {
    let name = endpoint.to_string();
    let docker = match endpoint {
        EngineEndpoint::Unix(path) => {
            probe_unix_socket(path)?;
            let path = path.to_string_lossy();
            Docker::connect_with_unix(&path, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
        }
        EngineEndpoint::Tcp { addr, tls: None } => {
            Docker::connect_with_http(addr, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
        }
        EngineEndpoint::Tcp {
            addr,
            tls: Some(files),
        } => {
            files.check(&name)?;
            // bollard's client-certificate resolver asks for the process's
            // provider; hermetic's rustls is built with ring only.
            let _ = rustls::crypto::ring::default_provider().install_default();
            Docker::connect_with_ssl(
                addr,
                &files.key(),
                &files.cert(),
                &files.ca(),
                REQUEST_TIMEOUT_SECS,
                API_DEFAULT_VERSION,
            )
        }
        EngineEndpoint::Ssh(dest) => Docker::connect_with_ssh(
            &format!("ssh://{dest}"),
            REQUEST_TIMEOUT_SECS,
            API_DEFAULT_VERSION,
            None,
        ),
    };
    docker.map_err(|e| failure(endpoint, &e))
}

async fn connect_one(endpoint: &EngineEndpoint) -> Result<Engine, EngineError> {
    let docker = client(endpoint)?;
    let connect_err = |e: bollard::errors::Error| failure(endpoint, &e);
    // Liveness first, quickly; then an engine that answered gets time.
    let ping_timeout = match endpoint {
        EngineEndpoint::Ssh(_) => SSH_CONNECT_TIMEOUT,
        _ => CONNECT_TIMEOUT,
    };
    tokio::time::timeout(ping_timeout, docker.ping())
        .await
        .map_err(|_| EngineError::Timeout {
            endpoint: endpoint.to_string(),
            timeout: ping_timeout,
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
    debug!(%endpoint, %kind, api = %api_version, tls = endpoint.is_tls(), "connected to engine");
    Ok(Engine {
        docker,
        kind,
        endpoint: endpoint.clone(),
        server_version: version.version.unwrap_or_default(),
        api_version,
        stream_output: false,
    })
}

/// What went wrong, from the innermost cause of a bollard error: the
/// HTTP client wraps a refused connection or a TLS alert in layers whose
/// own text ("client error (Connect)") says nothing.
fn failure(endpoint: &EngineEndpoint, err: &bollard::errors::Error) -> EngineError {
    use bollard::errors::Error as B;
    let name = endpoint.to_string();
    let tls_hint = |reason: String| EngineError::Tls {
        endpoint: name.clone(),
        reason,
    };
    match err {
        B::CertPathError { path } | B::CertParseError { path } => {
            return EngineError::TlsFile {
                endpoint: name,
                path: path.clone(),
                reason: "cannot be read as PEM".into(),
            };
        }
        B::CertMultipleKeys { count, path } => {
            return EngineError::TlsFile {
                endpoint: name,
                path: path.clone(),
                reason: format!("holds {count} private keys, not one"),
            };
        }
        // dockerd's answer to plain HTTP on its TLS port.
        B::DockerResponseServerError {
            status_code: 400,
            message,
        } if message.contains("HTTPS server") => {
            return EngineError::PlainToTls { endpoint: name };
        }
        _ => {}
    }
    let mut innermost = err.to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        // io::Error::source() skips the error it wraps: look inside first.
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        for candidate in [Some(e), inner].into_iter().flatten() {
            if let Some(tls) = candidate.downcast_ref::<rustls::Error>() {
                return tls_hint(format!("TLS handshake failed: {tls}"));
            }
            if let Some(io) = candidate.downcast_ref::<std::io::Error>() {
                match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => {
                        return connect_failure(endpoint, "connection refused (nothing listens)");
                    }
                    std::io::ErrorKind::ConnectionReset if endpoint.is_tls() => {
                        return tls_hint(
                            "the engine closed the connection during the TLS handshake".into(),
                        );
                    }
                    _ => {}
                }
            }
        }
        innermost = e.to_string();
        source = inner.or_else(|| e.source());
    }
    connect_failure(endpoint, &innermost)
}

fn connect_failure(endpoint: &EngineEndpoint, reason: &str) -> EngineError {
    match endpoint {
        EngineEndpoint::Ssh(_) => EngineError::Ssh {
            endpoint: endpoint.to_string(),
            reason: reason.to_string(),
        },
        _ => EngineError::Connect {
            endpoint: endpoint.to_string(),
            reason: reason.to_string(),
        },
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> TlsEnv {
        TlsEnv::default()
    }

    fn verify(dir: &str) -> TlsEnv {
        TlsEnv {
            verify: true,
            cert_path: Some(dir.into()),
            ..Default::default()
        }
    }

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

    #[test]
    fn parses_endpoint_forms() {
        let parse = |v: &str| EngineEndpoint::parse(v, &plain()).unwrap();
        assert_eq!(
            parse("/run/x.sock"),
            EngineEndpoint::Unix("/run/x.sock".into())
        );
        assert_eq!(
            parse("unix:///run/x.sock"),
            EngineEndpoint::Unix("/run/x.sock".into())
        );
        assert_eq!(
            parse("tcp://127.0.0.1:2375"),
            EngineEndpoint::Tcp {
                addr: "127.0.0.1:2375".into(),
                tls: None
            }
        );
        assert_eq!(
            parse("ssh://builder@build.example"),
            EngineEndpoint::Ssh("builder@build.example".into())
        );
        let port = EngineEndpoint::parse("ssh://builder@build.example:2222", &plain())
            .unwrap_err()
            .to_string();
        assert!(port.contains("Port 2222"), "{port}");
        assert!(EngineEndpoint::parse("ssh://host/path", &plain()).is_err());
        assert!(EngineEndpoint::parse("fd://", &plain()).is_err());
    }

    #[test]
    fn tcp_uses_tls_when_docker_tls_verify_is_set() {
        let e = EngineEndpoint::parse("tcp://127.0.0.1:23760", &verify("/certs")).unwrap();
        assert!(e.is_tls());
        assert_eq!(e.to_string(), "tcp://127.0.0.1:23760");
        let EngineEndpoint::Tcp {
            tls: Some(files), ..
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!(files.ca(), Path::new("/certs/ca.pem"));
        assert_eq!(files.cert(), Path::new("/certs/cert.pem"));
        assert_eq!(files.key(), Path::new("/certs/key.pem"));
        // Docker's default ports and cert directory.
        let home = TlsEnv {
            verify: true,
            home: Some("/home/u".into()),
            ..Default::default()
        };
        assert_eq!(
            EngineEndpoint::parse("tcp://build.example", &home).unwrap(),
            EngineEndpoint::Tcp {
                addr: "build.example:2376".into(),
                tls: Some(TlsFiles {
                    dir: "/home/u/.docker".into()
                })
            }
        );
        assert_eq!(
            EngineEndpoint::parse("tcp://build.example", &plain()).unwrap(),
            EngineEndpoint::Tcp {
                addr: "build.example:2375".into(),
                tls: None
            }
        );
        // http:// stays plain whatever the variables say.
        assert!(
            !EngineEndpoint::parse("http://h:1", &verify("/c"))
                .unwrap()
                .is_tls()
        );
        let no_verify = TlsEnv {
            tls_only: true,
            ..Default::default()
        };
        let err = EngineEndpoint::parse("tcp://h:1", &no_verify).unwrap_err();
        assert!(err.to_string().contains("DOCKER_TLS_VERIFY"), "{err}");
    }

    #[test]
    fn missing_or_broken_tls_files_are_named_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            dir: dir.path().to_path_buf(),
        };
        let err = files.check("tcp://h:1").unwrap_err().to_string();
        assert!(err.contains(&*files.ca().to_string_lossy()), "{err}");
        assert!(err.contains("no such file"), "{err}");
        assert!(err.contains("tcp://h:1"), "{err}");
        fs_err::write(files.ca(), "not pem").unwrap();
        let err = files.check("tcp://h:1").unwrap_err().to_string();
        assert!(err.contains("ca.pem: holds no PEM certificate"), "{err}");
    }

    #[test]
    fn flag_wins_over_environment() {
        let opts = ConnectOptions {
            socket: Some("/tmp/flag.sock".into()),
            ..Default::default()
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

    #[tokio::test]
    async fn refused_tcp_is_described_not_wrapped() {
        // A port nothing listens on: bind, note the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = EngineEndpoint::parse(&format!("tcp://127.0.0.1:{port}"), &plain()).unwrap();
        let err = connect_one(&endpoint).await.unwrap_err().to_string();
        assert!(err.contains("connection refused"), "{err}");
        assert!(err.contains(&format!("tcp://127.0.0.1:{port}")), "{err}");
    }
}

//! A client for one repository of an OCI distribution registry (the
//! distribution spec's push side): blob HEAD, cross-repository mount,
//! monolithic and chunked uploads, manifest PUT/GET, the referrers API.
//!
//! Every request goes through [`Registry::send`], which answers `401`
//! challenges (Basic, or Bearer with a token fetched from the realm for the
//! scopes needed) and retries with exponential backoff on dropped
//! connections, `5xx` and `429`, a bounded number of times. Requests inside
//! an upload session are not retried one by one: the caller restarts the
//! blob (after a HEAD, so a blob that did arrive is not sent twice).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use indicatif::ProgressBar;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::Mutex;
use tracing::{debug, warn};

use super::OciError;
use super::auth::{Challenge, Credentials, parse_challenge};
use super::reference::Reference;

/// How requests are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per request (at least 1).
    pub attempts: u32,
    /// Delay before the second attempt; doubled for each further one.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            backoff: Duration::from_millis(250),
        }
    }
}

/// What a request sends.
#[derive(Debug, Clone)]
pub enum Body {
    /// No body.
    Empty,
    /// These bytes.
    Bytes(Bytes),
    /// `len` bytes of a file from `offset`, counted on `bar`.
    File {
        /// The file.
        path: PathBuf,
        /// Where in it to start.
        offset: u64,
        /// How many bytes to send.
        len: u64,
        /// A progress bar to count the bytes on.
        bar: Option<ProgressBar>,
    },
}

/// A registry repository we push to.
#[derive(Debug)]
pub struct Registry {
    http: reqwest::Client,
    base: String,
    registry: String,
    repository: String,
    creds: Option<Credentials>,
    /// The `Authorization` header in use (never logged).
    auth: Mutex<Option<HeaderValue>>,
    retry: RetryPolicy,
}

fn install_crypto_provider() {
    // Several parts of a process may race to install it; losing is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Registry {
    /// A client for `reference`'s repository. Loopback registries are
    /// spoken to over HTTP, others over HTTPS unless `insecure`.
    pub fn new(
        reference: &Reference,
        creds: Option<Credentials>,
        insecure: bool,
        retry: RetryPolicy,
    ) -> Result<Self, OciError> {
        install_crypto_provider();
        let scheme = if insecure || reference.is_loopback() {
            "http"
        } else {
            "https"
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("hermetic/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| OciError::Transport {
                registry: reference.registry.clone(),
                action: "create HTTP client".into(),
                attempts: 0,
                reason: e.to_string(),
            })?;
        Ok(Registry {
            http,
            base: format!("{scheme}://{}", reference.registry),
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            creds,
            auth: Mutex::new(None),
            retry: RetryPolicy {
                attempts: retry.attempts.max(1),
                ..retry
            },
        })
    }

    /// The registry host (and port).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// How failed requests are retried.
    pub fn retry(&self) -> RetryPolicy {
        self.retry
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{}", self.base, self.repository, path)
    }

    /// Resolves an upload `Location` (absolute or relative).
    fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            format!("{}/{location}", self.base)
        }
    }

    fn push_scope(&self) -> String {
        format!("repository:{}:pull,push", self.repository)
    }

    async fn body(&self, body: &Body) -> Result<reqwest::Body, std::io::Error> {
        Ok(match body {
            Body::Empty => reqwest::Body::from(Vec::new()),
            Body::Bytes(b) => reqwest::Body::from(b.clone()),
            Body::File {
                path,
                offset,
                len,
                bar,
            } => {
                let mut file = tokio::fs::File::open(path).await?;
                file.seek(std::io::SeekFrom::Start(*offset)).await?;
                let bar = bar.clone();
                let stream =
                    tokio_util::io::ReaderStream::with_capacity(file.take(*len), 256 << 10)
                        .inspect(move |c| {
                            if let (Ok(c), Some(bar)) = (c, &bar) {
                                bar.inc(c.len() as u64);
                            }
                        });
                reqwest::Body::wrap_stream(stream)
            }
        })
    }

    /// Sends a request, authenticating on challenges and (when `retry`)
    /// retrying transient failures. `extra_scopes` are added to the bearer
    /// token request (e.g. pull on a mount source).
    #[allow(clippy::too_many_arguments)] // one flat call site per request kind reads best
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Body,
        action: &str,
        retry: bool,
        extra_scopes: &[String],
    ) -> Result<Response, OciError> {
        let max = if retry { self.retry.attempts } else { 1 };
        let mut attempt = 0;
        let mut authed_after_challenge = false;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), url)
                .headers(headers.clone());
            if let Some(auth) = self.auth.lock().await.clone() {
                req = req.header(header::AUTHORIZATION, auth);
            }
            let body_rb = self.body(&body).await.map_err(|e| OciError::Io {
                path: match &body {
                    Body::File { path, .. } => path.clone(),
                    _ => PathBuf::new(),
                },
                source: e,
            })?;
            if let Body::File { len, .. } = &body {
                req = req.header(header::CONTENT_LENGTH, *len);
            }
            if let (Body::File { bar: Some(bar), .. }, true) = (&body, attempt > 1) {
                bar.set_position(0);
            }
            let transient = match req.body(body_rb).send().await {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    if authed_after_challenge {
                        return Err(self.unauthorized());
                    }
                    let challenge = resp
                        .headers()
                        .get(header::WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    self.authenticate(&challenge, extra_scopes).await?;
                    authed_after_challenge = true;
                    attempt -= 1;
                    continue;
                }
                Ok(resp)
                    if resp.status().is_server_error()
                        || resp.status() == StatusCode::TOO_MANY_REQUESTS =>
                {
                    let status = resp.status().as_u16();
                    let text = body_text(resp).await;
                    if attempt >= max {
                        return Err(OciError::Registry {
                            registry: self.registry.clone(),
                            action: action.to_string(),
                            status,
                            body: text,
                        });
                    }
                    format!("HTTP {status}")
                }
                Ok(resp) => return Ok(resp),
                Err(e) => {
                    let reason = error_chain(&e);
                    if attempt >= max {
                        return Err(OciError::Transport {
                            registry: self.registry.clone(),
                            action: action.to_string(),
                            attempts: attempt,
                            reason,
                        });
                    }
                    reason
                }
            };
            let delay = self.retry.backoff * 2u32.saturating_pow(attempt - 1);
            warn!(
                registry = %self.registry,
                action,
                attempt,
                "transient failure ({transient}); retrying in {} ms",
                delay.as_millis()
            );
            tokio::time::sleep(delay).await;
        }
    }

    fn unauthorized(&self) -> OciError {
        OciError::Unauthorized {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            user: self.creds.as_ref().map(|c| c.username.clone()),
        }
    }

    /// Answers a challenge: Basic with the credentials, or a bearer token
    /// from the realm (with the credentials, if any, as Basic auth).
    async fn authenticate(&self, challenge: &str, extra_scopes: &[String]) -> Result<(), OciError> {
        let header = match parse_challenge(challenge) {
            Some(Challenge::Basic) => {
                let creds = self.creds.as_ref().ok_or_else(|| self.unauthorized())?;
                creds.basic_header()
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let mut query: Vec<(&str, String)> = Vec::new();
                if let Some(s) = service {
                    query.push(("service", s));
                }
                let mut scopes = vec![self.push_scope()];
                scopes.extend(scope);
                scopes.extend(extra_scopes.iter().cloned());
                scopes.sort();
                scopes.dedup();
                for s in scopes {
                    query.push(("scope", s));
                }
                let mut req = self.http.get(&realm).query(&query);
                if let Some(c) = &self.creds {
                    req = req.header(header::AUTHORIZATION, c.basic_header());
                }
                let resp = req.send().await.map_err(|e| OciError::Transport {
                    registry: self.registry.clone(),
                    action: format!("get a token from {realm}"),
                    attempts: 1,
                    reason: error_chain(&e),
                })?;
                if matches!(resp.status().as_u16(), 401 | 403) {
                    return Err(self.unauthorized());
                }
                if !resp.status().is_success() {
                    return Err(OciError::Registry {
                        registry: self.registry.clone(),
                        action: format!("get a token from {realm}"),
                        status: resp.status().as_u16(),
                        body: body_text(resp).await,
                    });
                }
                #[derive(serde::Deserialize)]
                struct Token {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let t: Token = resp.json().await.map_err(|e| OciError::BadChallenge {
                    registry: self.registry.clone(),
                    challenge: format!("token response unreadable: {e}"),
                })?;
                let token = t
                    .token
                    .or(t.access_token)
                    .ok_or_else(|| OciError::BadChallenge {
                        registry: self.registry.clone(),
                        challenge: "token response has no token".into(),
                    })?;
                format!("Bearer {token}")
            }
            None => {
                return Err(OciError::BadChallenge {
                    registry: self.registry.clone(),
                    challenge: challenge.to_string(),
                });
            }
        };
        let mut value = HeaderValue::from_str(&header).map_err(|_| OciError::BadChallenge {
            registry: self.registry.clone(),
            challenge: "credentials are not a valid header".into(),
        })?;
        value.set_sensitive(true);
        *self.auth.lock().await = Some(value);
        Ok(())
    }

    fn status_error(&self, action: &str, status: StatusCode, body: String) -> OciError {
        if status == StatusCode::FORBIDDEN {
            OciError::Denied {
                registry: self.registry.clone(),
                repository: self.repository.clone(),
                action: action.to_string(),
                status: status.as_u16(),
            }
        } else {
            OciError::Registry {
                registry: self.registry.clone(),
                action: action.to_string(),
                status: status.as_u16(),
                body,
            }
        }
    }

    /// `HEAD /v2/<repo>/blobs/<digest>`: is the blob there?
    pub async fn blob_exists(&self, digest: &str) -> Result<bool, OciError> {
        let action = format!("check blob {digest}");
        let resp = self
            .send(
                Method::HEAD,
                &self.url(&format!("blobs/{digest}")),
                HeaderMap::new(),
                Body::Empty,
                &action,
                true,
                &[],
            )
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(self.status_error(&action, s, String::new())),
        }
    }

    /// Tries a cross-repository mount. `Ok(None)` = mounted; `Ok(Some(loc))`
    /// = not mounted, but an upload session was opened at `loc`.
    pub async fn mount(&self, digest: &str, from: &str) -> Result<Option<String>, OciError> {
        let action = format!("mount blob {digest} from {from}");
        let url = format!("{}?mount={digest}&from={from}", self.url("blobs/uploads/"));
        let resp = self
            .send(
                Method::POST,
                &url,
                HeaderMap::new(),
                Body::Empty,
                &action,
                true,
                &[format!("repository:{from}:pull")],
            )
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(None),
            StatusCode::ACCEPTED => Ok(Some(self.location(&resp, &action)?)),
            s => Err(self.status_error(&action, s, body_text(resp).await)),
        }
    }

    fn location(&self, resp: &Response, action: &str) -> Result<String, OciError> {
        resp.headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| self.resolve(l))
            .ok_or_else(|| OciError::Registry {
                registry: self.registry.clone(),
                action: action.to_string(),
                status: resp.status().as_u16(),
                body: "no Location header".into(),
            })
    }

    /// Opens an upload session and returns its location.
    pub async fn start_upload(&self, digest: &str) -> Result<String, OciError> {
        let action = format!("start upload of {digest}");
        let resp = self
            .send(
                Method::POST,
                &self.url("blobs/uploads/"),
                HeaderMap::new(),
                Body::Empty,
                &action,
                true,
                &[],
            )
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            let s = resp.status();
            return Err(self.status_error(&action, s, body_text(resp).await));
        }
        self.location(&resp, &action)
    }

    fn with_digest(location: &str, digest: &str) -> String {
        let sep = if location.contains('?') { '&' } else { '?' };
        format!("{location}{sep}digest={digest}")
    }

    /// Uploads a whole blob in one `PUT` to an open session.
    pub async fn upload_monolithic(
        &self,
        location: &str,
        digest: &str,
        path: &Path,
        size: u64,
        bar: Option<ProgressBar>,
    ) -> Result<(), OciError> {
        let action = format!("upload blob {digest}");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let resp = self
            .send(
                Method::PUT,
                &Self::with_digest(location, digest),
                headers,
                Body::File {
                    path: path.to_path_buf(),
                    offset: 0,
                    len: size,
                    bar,
                },
                &action,
                false,
                &[],
            )
            .await?;
        if resp.status() != StatusCode::CREATED {
            let s = resp.status();
            return Err(self.status_error(&action, s, body_text(resp).await));
        }
        Ok(())
    }

    /// Uploads a blob as `PATCH` chunks of `chunk` bytes, then closes the
    /// session with a `PUT`.
    pub async fn upload_chunked(
        &self,
        mut location: String,
        digest: &str,
        path: &Path,
        size: u64,
        chunk: u64,
        bar: Option<ProgressBar>,
    ) -> Result<(), OciError> {
        let action = format!("upload blob {digest}");
        let mut offset = 0;
        while offset < size {
            let len = chunk.min(size - offset);
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            let range = format!("{offset}-{}", offset + len - 1);
            headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&range).unwrap_or(HeaderValue::from_static("0-0")),
            );
            let resp = self
                .send(
                    Method::PATCH,
                    &location,
                    headers,
                    Body::File {
                        path: path.to_path_buf(),
                        offset,
                        len,
                        bar: None,
                    },
                    &action,
                    false,
                    &[],
                )
                .await?;
            if resp.status() != StatusCode::ACCEPTED {
                let s = resp.status();
                return Err(self.status_error(&action, s, body_text(resp).await));
            }
            location = self.location(&resp, &action)?;
            offset += len;
            if let Some(bar) = &bar {
                bar.set_position(offset);
            }
            debug!(digest, offset, size, "chunk uploaded");
        }
        let resp = self
            .send(
                Method::PUT,
                &Self::with_digest(&location, digest),
                HeaderMap::new(),
                Body::Empty,
                &action,
                false,
                &[],
            )
            .await?;
        if resp.status() != StatusCode::CREATED {
            let s = resp.status();
            return Err(self.status_error(&action, s, body_text(resp).await));
        }
        Ok(())
    }

    /// `PUT /v2/<repo>/manifests/<reference>`; returns whether the registry
    /// acknowledged a `subject` (the `OCI-Subject` header).
    pub async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<bool, OciError> {
        let action = format!("put manifest {reference}");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(media_type)
                .unwrap_or(HeaderValue::from_static("application/json")),
        );
        let resp = self
            .send(
                Method::PUT,
                &self.url(&format!("manifests/{reference}")),
                headers,
                Body::Bytes(Bytes::copy_from_slice(bytes)),
                &action,
                true,
                &[],
            )
            .await?;
        if resp.status() != StatusCode::CREATED {
            let s = resp.status();
            return Err(self.status_error(&action, s, body_text(resp).await));
        }
        Ok(resp.headers().contains_key("oci-subject"))
    }

    /// `GET /v2/<repo>/manifests/<reference>`: the bytes as served.
    pub async fn get_manifest(&self, reference: &str, accept: &str) -> Result<Vec<u8>, OciError> {
        let action = format!("get manifest {reference}");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_str(accept).unwrap_or(HeaderValue::from_static("*/*")),
        );
        let resp = self
            .send(
                Method::GET,
                &self.url(&format!("manifests/{reference}")),
                headers,
                Body::Empty,
                &action,
                true,
                &[],
            )
            .await?;
        if !resp.status().is_success() {
            let s = resp.status();
            return Err(self.status_error(&action, s, body_text(resp).await));
        }
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| OciError::Transport {
                registry: self.registry.clone(),
                action,
                attempts: 1,
                reason: error_chain(&e),
            })
    }

    /// `GET /v2/<repo>/referrers/<digest>`: `None` when the registry has no
    /// referrers API (404), else the referrers index.
    pub async fn referrers(&self, digest: &str) -> Result<Option<serde_json::Value>, OciError> {
        let action = format!("list referrers of {digest}");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.oci.image.index.v1+json"),
        );
        let resp = self
            .send(
                Method::GET,
                &self.url(&format!("referrers/{digest}")),
                headers,
                Body::Empty,
                &action,
                true,
                &[],
            )
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(resp.json().await.ok()),
            s => Err(self.status_error(&action, s, body_text(resp).await)),
        }
    }

    /// Tags in the repository (for finding the SBOM fallback tag).
    pub async fn has_tag(&self, tag: &str) -> Result<bool, OciError> {
        let action = format!("check tag {tag}");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.oci.image.manifest.v1+json"),
        );
        let resp = self
            .send(
                Method::HEAD,
                &self.url(&format!("manifests/{tag}")),
                headers,
                Body::Empty,
                &action,
                true,
                &[],
            )
            .await?;
        Ok(resp.status().is_success())
    }
}

/// A response body for an error message, shortened.
async fn body_text(resp: Response) -> String {
    let text = resp.text().await.unwrap_or_default();
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// A reqwest error with its causes (reqwest's own Display is terse).
pub(crate) fn error_chain(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else if e.is_body() {
        "connection dropped while sending the body".to_string()
    } else if e.is_decode() {
        "unreadable response".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

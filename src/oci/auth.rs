//! Registry credentials and authentication challenges.
//!
//! Credentials come from the command line (`--username` +
//! `--password-stdin`) or from Docker's config (`$DOCKER_CONFIG/config.json`,
//! else `~/.docker/config.json`): a per-registry `credHelpers` entry, then
//! `auths.<registry>.auth` (base64 `user:password`), then `credsStore`. A
//! secret is held in [`Secret`], whose `Debug` and `Display` print nothing,
//! so it cannot leak into logs or error messages.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;

use super::OciError;

/// A password or token that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password or token.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself: call only where it goes on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A user name and its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: Secret,
}

impl Credentials {
    /// `Basic <base64(user:password)>`.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password.expose());
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic`: send the user name and password.
    Basic,
    /// `Bearer`: fetch a token from `realm` and send that.
    Bearer {
        /// The token endpoint URL.
        realm: String,
        /// The `service` parameter for the token request.
        service: Option<String>,
        /// The `scope` parameter for the token request.
        scope: Option<String>,
    },
}

/// Parses `Basic realm="…"` or `Bearer realm="…",service="…",scope="…"`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    out
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// The host part of a config key (`https://index.docker.io/v1/` -> `index.docker.io`).
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

fn same_registry(key: &str, registry: &str) -> bool {
    let host = key_host(key);
    host == registry
        || (registry == "registry-1.docker.io"
            && matches!(
                host,
                "index.docker.io" | "docker.io" | "registry-1.docker.io"
            ))
}

/// Credentials for `registry` from Docker's config, if any.
pub fn from_docker_config(registry: &str) -> Result<Option<Credentials>, OciError> {
    let Some(path) = docker_config_path() else {
        return Ok(None);
    };
    let text = match fs_err::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(OciError::DockerConfig {
                path,
                reason: e.to_string(),
            });
        }
    };
    let bad = |reason: String| OciError::DockerConfig {
        path: path.clone(),
        reason,
    };
    let config: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    if let Some(helpers) = config.get("credHelpers").and_then(|v| v.as_object()) {
        for (key, helper) in helpers {
            if let Some(h) = helper.as_str().filter(|_| same_registry(key, registry)) {
                return run_helper(h, key, registry);
            }
        }
    }
    if let Some(auths) = config.get("auths").and_then(|v| v.as_object()) {
        for (key, entry) in auths {
            if !same_registry(key, registry) {
                continue;
            }
            if let Some(auth) = entry.get("auth").and_then(|v| v.as_str()) {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|_| bad(format!("auths.{key}.auth is not base64")))?;
                let decoded = String::from_utf8(decoded)
                    .map_err(|_| bad(format!("auths.{key}.auth is not UTF-8")))?;
                let (user, pass) = decoded
                    .split_once(':')
                    .ok_or_else(|| bad(format!("auths.{key}.auth is not user:password")))?;
                return Ok(Some(Credentials {
                    username: user.to_string(),
                    password: Secret::new(pass),
                }));
            }
        }
    }
    if let Some(store) = config.get("credsStore").and_then(|v| v.as_str()) {
        return run_helper(store, registry, registry);
    }
    Ok(None)
}

/// `docker-credential-<helper> get` with the server URL on stdin.
fn run_helper(helper: &str, key: &str, registry: &str) -> Result<Option<Credentials>, OciError> {
    let fail = |reason: String| OciError::CredentialHelper {
        helper: helper.to_string(),
        registry: registry.to_string(),
        reason,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(key.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout);
        // "credentials not found" is not an error: go anonymous.
        if text.contains("not found") || String::from_utf8_lossy(&out.stderr).contains("not found")
        {
            return Ok(None);
        }
        return Err(fail(format!("exited with {}", out.status)));
    }
    #[derive(serde::Deserialize)]
    struct HelperOut {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let parsed: HelperOut = serde_json::from_slice(&out.stdout)
        .map_err(|_| fail("its output is not the expected JSON".into()))?;
    Ok(Some(Credentials {
        username: parsed.username,
        password: Secret::new(parsed.secret),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn secrets_do_not_print() {
        let c = Credentials {
            username: "u".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(c.basic_header().starts_with("Basic "));
    }

    #[test]
    fn config_keys_match_hosts() {
        assert!(same_registry(
            "https://index.docker.io/v1/",
            "registry-1.docker.io"
        ));
        assert!(same_registry("http://127.0.0.1:5000", "127.0.0.1:5000"));
        assert!(!same_registry("ghcr.io", "127.0.0.1:5000"));
    }
}

//! Image references as users type them (`registry[:port]/repo[:tag][@digest]`),
//! resolved the way Docker resolves them: no registry means Docker Hub
//! (`registry-1.docker.io`, `library/` for single-component names).

use std::fmt;

use super::OciError;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host (and port), e.g. `127.0.0.1:5000`, `ghcr.io`.
    pub registry: String,
    /// Repository path, e.g. `acme/tool`.
    pub repository: String,
    /// The tag, if given (`:tag`).
    pub tag: Option<String>,
    /// The digest, if given (`@sha256:…`).
    pub digest: Option<String>,
}

const DOCKER_HUB: &str = "registry-1.docker.io";

impl Reference {
    /// Parses a reference.
    pub fn parse(input: &str) -> Result<Self, OciError> {
        let bad = |reason: &str| OciError::BadReference {
            reference: input.to_string(),
            reason: reason.to_string(),
        };
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => {
                let hex = d
                    .strip_prefix("sha256:")
                    .ok_or_else(|| bad("only sha256 digests are supported"))?;
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad("digest is not sha256:<64 hex>"));
                }
                (r, Some(d.to_string()))
            }
            None => (input, None),
        };
        let (host, path) = match rest.split_once('/') {
            Some((h, p)) if h.contains('.') || h.contains(':') || h == "localhost" => {
                (h.to_string(), p.to_string())
            }
            _ => (DOCKER_HUB.to_string(), rest.to_string()),
        };
        let (path, tag) = match path.rsplit_once(':') {
            Some((p, t)) if !t.contains('/') => (p.to_string(), Some(t.to_string())),
            _ => (path, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
                && !t.starts_with(['.', '-']);
            if !ok {
                return Err(bad("invalid tag"));
            }
        }
        let path_ok = !path.is_empty()
            && path.split('/').all(|c| {
                !c.is_empty()
                    && c.chars().all(|ch| {
                        ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch)
                    })
            });
        if !path_ok {
            return Err(bad(
                "repository must be lowercase letters, digits and . _ - separated by /",
            ));
        }
        let repository = if host == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        Ok(Reference {
            registry: host,
            repository,
            tag,
            digest,
        })
    }

    /// True for registries on the loopback interface, spoken to over plain
    /// HTTP (as Docker does).
    pub fn is_loopback(&self) -> bool {
        let host = self
            .registry
            .rsplit_once(':')
            .map_or(self.registry.as_str(), |(h, _)| h);
        host == "localhost" || host.starts_with("127.") || host == "[::1]"
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `registry/repository@digest`: how hermetic stores references.
    pub fn pinned(&self, digest: &str) -> String {
        format!("{}@{digest}", self.name())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let r = Reference::parse("127.0.0.1:5000/acme/tool:1.0").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "acme/tool");
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert!(r.is_loopback());
        let r = Reference::parse("debian").unwrap();
        assert_eq!(r.registry, "registry-1.docker.io");
        assert_eq!(r.repository, "library/debian");
        let r = Reference::parse("ghcr.io/a/b").unwrap();
        assert_eq!(r.tag, None);
        assert!(!r.is_loopback());
        let d = format!("localhost:5000/x@sha256:{}", "a".repeat(64));
        assert!(Reference::parse(&d).unwrap().digest.is_some());
        assert!(Reference::parse("localhost:5000/Upper:1").is_err());
        assert!(Reference::parse("localhost:5000/x:-bad").is_err());
    }
}

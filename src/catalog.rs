//! The builder image catalog (`images/catalog.toml`, embedded) as data: which
//! builder serves each glibc baseline, how local images are made, and the
//! clean runtime bases. Parsed and checked once per process; no engine, no
//! I/O. What is done with these entries on an engine (making, resolving,
//! listing images) lives in [`crate::builder`].
//!
//! The inputs hashes defined here are the cache keys of locally made
//! images: everything that goes into one, so that a change to any of it
//! makes a new image instead of reusing a stale one.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::glibc::{Glibc, GlibcError};

/// The catalog, as shipped.
const CATALOG_TOML: &str = include_str!("../images/catalog.toml");
/// The local builder's Dockerfile, as shipped: part of a local builder's inputs.
pub const BUILDER_DOCKERFILE: &str = include_str!("../Dockerfiles/builder-debian.Dockerfile");
/// Bumped when the way local images are made changes, to invalidate caches.
const LOCAL_IMAGE_FORMAT: u32 = 1;

/// The whole catalog file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Format version of the file (1).
    pub format: u32,
    /// How local images are made.
    pub local: LocalConfig,
    /// One builder per baseline.
    pub builder: Vec<BuilderEntry>,
    /// Clean runtime bases (smoke tests, `hermetic image`).
    pub runtime: Vec<RuntimeEntry>,
}

/// How local images are made.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// Debian mirror the rootfs tarballs come from.
    pub mirror: String,
    /// Fixed epoch of rootfs tarballs (mmdebstrap is bit-identical for the
    /// same epoch and package versions).
    pub source_date_epoch: u64,
    /// File name of the builder Dockerfile in its build context.
    pub dockerfile: String,
    /// The CPython local builders compile.
    pub python: PythonSource,
}

/// The pinned CPython source tarball local builders compile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PythonSource {
    /// Full version, e.g. `3.11.2`.
    pub version: String,
    /// Where the tarball is fetched from.
    pub url: String,
    /// Its SHA-256, checked after download.
    pub sha256: String,
}

impl PythonSource {
    /// `cp311-cp311` for 3.11.x.
    pub fn abi_tag(&self) -> String {
        let mut parts = self.version.split('.');
        let major = parts.next().unwrap_or("3");
        let minor = parts.next().unwrap_or("0");
        format!("cp{major}{minor}-cp{major}{minor}")
    }

    /// Where local builders install it: `/opt/python/cp311-cp311`.
    pub fn prefix(&self) -> String {
        format!("/opt/python/{}", self.abi_tag())
    }
}

/// Where a builder comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Pulled from a registry, pinned by digest.
    Upstream,
    /// Built on this machine from Debian's mirror.
    Local,
}

/// One builder in the catalog.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BuilderEntry {
    /// The baseline it builds for.
    pub glibc: Glibc,
    /// Upstream (by digest) or made locally.
    pub source: Source,
    /// Upstream: `name@sha256:<digest>`.
    pub reference: Option<String>,
    /// Local: the Debian suite.
    pub suite: Option<String>,
    /// Upstream: where its (static) CPython lives.
    pub python_prefix: Option<String>,
}

/// One clean runtime base (Debian minbase, no Python).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeEntry {
    /// The Debian suite.
    pub suite: String,
    /// The glibc it carries.
    pub glibc: Glibc,
}

impl Catalog {
    /// The catalog embedded in this binary, parsed and checked once.
    pub fn embedded() -> Result<&'static Catalog, CatalogError> {
        static PARSED: OnceLock<Result<Catalog, String>> = OnceLock::new();
        PARSED
            .get_or_init(|| Catalog::parse(CATALOG_TOML).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|reason| CatalogError::Invalid {
                reason: reason.clone(),
            })
    }

    /// Parses and checks a catalog document.
    pub fn parse(text: &str) -> Result<Catalog, CatalogError> {
        let catalog: Catalog = toml::from_str(text).map_err(|e| CatalogError::Invalid {
            reason: e.to_string(),
        })?;
        for b in &catalog.builder {
            match b.source {
                Source::Upstream if b.reference.is_none() => {
                    return Err(CatalogError::Invalid {
                        reason: format!("upstream builder {} has no reference", b.glibc),
                    });
                }
                Source::Local if b.suite.is_none() => {
                    return Err(CatalogError::Invalid {
                        reason: format!("local builder {} has no suite", b.glibc),
                    });
                }
                _ => {}
            }
        }
        Ok(catalog)
    }

    /// The builder for a baseline.
    pub fn builder(&self, glibc: Glibc) -> Result<&BuilderEntry, CatalogError> {
        self.builder
            .iter()
            .find(|b| b.glibc == glibc)
            .ok_or_else(|| CatalogError::UnknownBaseline {
                glibc,
                known: self.builder.iter().map(|b| b.glibc.to_string()).collect(),
            })
    }

    /// Baselines with a local builder, for hints.
    pub fn local_baselines(&self) -> Vec<Glibc> {
        self.builder
            .iter()
            .filter(|b| b.source == Source::Local)
            .map(|b| b.glibc)
            .collect()
    }

    /// The runtime base for a suite.
    pub fn runtime(&self, suite: &str) -> Result<&RuntimeEntry, CatalogError> {
        self.runtime
            .iter()
            .find(|r| r.suite == suite)
            .ok_or_else(|| CatalogError::UnknownSuite {
                suite: suite.to_string(),
                known: self.runtime.iter().map(|r| r.suite.clone()).collect(),
            })
    }

    /// The newest runtime base: the "different, newer distro" smoke tests use.
    pub fn newest_runtime(&self) -> Option<&RuntimeEntry> {
        self.runtime.iter().max_by_key(|r| r.glibc)
    }

    /// The glibc of a suite the catalog knows (as a runtime or a builder).
    pub fn suite_glibc(&self, suite: &str) -> Result<Glibc, CatalogError> {
        self.runtime
            .iter()
            .find(|r| r.suite == suite)
            .map(|r| r.glibc)
            .or_else(|| {
                self.builder
                    .iter()
                    .find(|b| b.suite.as_deref() == Some(suite))
                    .map(|b| b.glibc)
            })
            .ok_or_else(|| CatalogError::UnknownSuite {
                suite: suite.to_string(),
                known: self.runtime.iter().map(|r| r.suite.clone()).collect(),
            })
    }

    /// Cache key of a suite's base rootfs.
    pub fn base_inputs_hash(&self, suite: &str) -> String {
        let inputs = serde_json::json!({
            "format": LOCAL_IMAGE_FORMAT,
            "tool": "mmdebstrap",
            "variant": "minbase",
            "suite": suite,
            "mirror": self.local.mirror,
            "source_date_epoch": self.local.source_date_epoch,
        });
        crate::archive::sha256_bytes(inputs.to_string().as_bytes())
    }

    /// Cache key of a local builder: everything that goes into it.
    pub fn builder_inputs_hash(&self, entry: &BuilderEntry) -> String {
        let suite = entry.suite.as_deref().unwrap_or_default();
        let inputs = serde_json::json!({
            "format": LOCAL_IMAGE_FORMAT,
            "glibc": entry.glibc,
            "base": self.base_inputs_hash(suite),
            "local": self.local,
            "dockerfile_sha256": crate::archive::sha256_bytes(BUILDER_DOCKERFILE.as_bytes()),
        });
        crate::archive::sha256_bytes(inputs.to_string().as_bytes())
    }
}

/// Errors in the catalog's data or in lookups against it.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A baseline that does not parse.
    #[error(transparent)]
    Baseline(#[from] GlibcError),

    /// No builder for a baseline.
    #[error("no builder for glibc {glibc} in the catalog (known baselines: {})", known.join(", "))]
    UnknownBaseline {
        /// The baseline asked for.
        glibc: Glibc,
        /// Those the catalog has.
        known: Vec<String>,
    },

    /// No runtime base for a suite.
    #[error("no runtime base for suite `{suite}` (known: {})", known.join(", "))]
    UnknownSuite {
        /// The suite asked for.
        suite: String,
        /// Those the catalog has.
        known: Vec<String>,
    },

    /// The embedded catalog does not parse or check.
    #[error("the image catalog is invalid: {reason}")]
    Invalid {
        /// What is wrong.
        reason: String,
    },
}

impl CatalogError {
    /// A line the user can act on.
    pub fn help(&self) -> Option<String> {
        match self {
            CatalogError::UnknownBaseline { .. } | CatalogError::UnknownSuite { .. } => {
                Some("`hermetic images list` shows every baseline and base the catalog has".into())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_parses_and_pins_upstream_by_digest() {
        let c = Catalog::embedded().unwrap();
        for b in &c.builder {
            if b.source == Source::Upstream {
                crate::engine::split_pinned(b.reference.as_deref().unwrap()).unwrap();
            }
        }
        for g in ["2.17", "2.28", "2.31", "2.34", "2.36", "2.41"] {
            c.builder(g.parse().unwrap()).unwrap();
        }
        assert_eq!(c.local.python.abi_tag(), "cp311-cp311");
        assert_eq!(c.local.python.prefix(), "/opt/python/cp311-cp311");
    }

    #[test]
    fn inputs_hash_changes_with_suite() {
        let c = Catalog::embedded().unwrap();
        assert_ne!(
            c.base_inputs_hash("bullseye"),
            c.base_inputs_hash("bookworm")
        );
        let b31 = c.builder("2.31".parse().unwrap()).unwrap();
        let b36 = c.builder("2.36".parse().unwrap()).unwrap();
        assert_ne!(c.builder_inputs_hash(b31), c.builder_inputs_hash(b36));
    }

    #[test]
    fn a_broken_catalog_is_refused_with_the_reason() {
        let err = Catalog::parse("format = 1\n[local]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid"), "{err}");
        let text = CATALOG_TOML.replace(
            "source = \"local\"\nsuite = \"bullseye\"",
            "source = \"local\"",
        );
        let err = Catalog::parse(&text).unwrap_err().to_string();
        assert!(err.contains("local builder 2.31 has no suite"), "{err}");
    }

    #[test]
    fn suites_know_their_glibc() {
        let c = Catalog::embedded().unwrap();
        assert_eq!(c.suite_glibc("bullseye").unwrap().to_string(), "2.31");
        assert!(c.suite_glibc("buster").is_err());
    }
}

//! The builder image catalog (`images/catalog.toml`, embedded) as data: which
//! builder serves each glibc baseline, how local images are made, and the
//! clean runtime bases. Parsed and checked once per process; no engine, no
//! I/O. What is done with these entries on an engine (making, resolving,
//! listing images) lives in [`crate::builder`].
//!
//! The inputs hashes defined here are the cache keys of locally made
//! images: everything that goes into one, so that a change to any of it
//! makes a new image instead of reusing a stale one.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::glibc::{Glibc, GlibcError};

/// The catalog, as shipped.
const CATALOG_TOML: &str = include_str!("../images/catalog.toml");
/// The distro builder's Dockerfile, as shipped: part of a local builder's inputs.
pub const BUILDER_DOCKERFILE: &str = include_str!("../Dockerfiles/builder-debian.Dockerfile");
/// The toolchain builder's Dockerfile, as shipped.
pub const TOOLCHAIN_DOCKERFILE: &str = include_str!("../Dockerfiles/builder-toolchain.Dockerfile");
/// The compiler wrapper of toolchain builders (`hermetic-cc`, `hermetic-c++`).
pub const TOOLCHAIN_CC: &str = include_str!("../Dockerfiles/hermetic-cc");
/// How toolchain builders build their libraries from source.
pub const TOOLCHAIN_LIBRARIES: &str = include_str!("../Dockerfiles/hermetic-build-libraries");
/// Bumped when the way local images are made changes, to invalidate caches.
/// 2: images are flattened into one reproducible layer (`builder::flatten`),
/// so an image made the old way is never taken for one under the same tag.
/// 3: directories at the epoch, engine mount points left out, so Docker and
/// Podman make the same image ID.
const LOCAL_IMAGE_FORMAT: u32 = 3;

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
    /// What toolchain builders add: the compiler and the libraries built
    /// from source for the baseline.
    pub toolchain: ToolchainConfig,
}

/// The pinned inputs of toolchain builders.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ToolchainConfig {
    /// File name of their Dockerfile in the build context.
    pub dockerfile: String,
    /// The ziglang wheel (PyPI), downloaded by hermetic on the host.
    pub zig: PinnedDownload,
    /// Libraries built from source, in build order.
    pub library: Vec<SourceLibrary>,
}

impl ToolchainConfig {
    /// The libraries a builder for `glibc` builds from source: those whose
    /// distro build needs a newer glibc than `glibc`, in catalog order.
    pub fn libraries_for(&self, glibc: Glibc) -> Vec<&SourceLibrary> {
        self.library.iter().filter(|l| glibc < l.below).collect()
    }
}

/// A library a toolchain builder builds from source when the distro's build
/// of it needs a newer glibc than the baseline.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceLibrary {
    /// Its name in `Dockerfiles/hermetic-build-libraries` (`build_<name>`).
    pub name: String,
    /// Its version, for people.
    pub version: String,
    /// Where its source tarball is fetched from.
    pub url: String,
    /// The tarball's SHA-256.
    pub sha256: String,
    /// Built for baselines older than this: the glibc the distro's build needs.
    pub below: Glibc,
}

impl SourceLibrary {
    /// The `NAME=URL=SHA256` argument of `hermetic-build-libraries`.
    pub fn build_arg(&self) -> String {
        format!("{}={}={}", self.name, self.url, self.sha256)
    }
}

/// A file fetched by URL and checked against its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedDownload {
    /// Its version, for people.
    pub version: String,
    /// Where it is fetched from.
    pub url: String,
    /// Its SHA-256.
    pub sha256: String,
}

impl PinnedDownload {
    /// The last path segment of the URL.
    pub fn file_name(&self) -> &str {
        self.url.rsplit('/').next().unwrap_or(&self.url)
    }
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

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Upstream => "upstream",
            Source::Local => "local",
        })
    }
}

/// How a builder reaches its baseline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The distro's own glibc is the baseline (manylinux, Debian suites).
    #[default]
    Distro,
    /// A compiler that targets the baseline's glibc (zig) on a newer distro.
    Toolchain,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Distro => "distro",
            Kind::Toolchain => "toolchain",
        })
    }
}

/// The package manager family of a builder's distro, which decides which of
/// a recipe's `system_packages` lists applies and how it is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageFamily {
    /// Debian and Ubuntu: apt, `.deb` names (`libyaml-dev`).
    Deb,
    /// RHEL, AlmaLinux, CentOS (every manylinux image): dnf or yum, RPM
    /// names (`libyaml-devel`).
    Rpm,
}

impl std::fmt::Display for PackageFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PackageFamily::Deb => "deb",
            PackageFamily::Rpm => "rpm",
        })
    }
}

/// One builder in the catalog. A baseline has at most one upstream and at
/// most one local builder; with both, the upstream one is the default and
/// the local one what is used when no registry answers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BuilderEntry {
    /// The baseline it builds for.
    pub glibc: Glibc,
    /// Upstream (by digest) or made locally.
    pub source: Source,
    /// Distro or toolchain builder.
    #[serde(default)]
    pub kind: Kind,
    /// Upstream: `name@sha256:<digest>`.
    pub reference: Option<String>,
    /// Local: the Debian suite.
    pub suite: Option<String>,
    /// Upstream: where its (static) CPython lives.
    pub python_prefix: Option<String>,
    /// Upstream: its distro's package family, when the catalog knows it
    /// (local builders are Debian). Unknown families are found by asking
    /// the image when the build resolves it.
    #[serde(default)]
    pub family: Option<PackageFamily>,
    /// Upstream, optional: the image ID (config digest) the reference
    /// stands for, which lets `images load` accept a docker-save archive
    /// (it keeps no registry digest).
    #[serde(default)]
    pub image_id: Option<String>,
    /// Which catalog file the entry comes from.
    #[serde(skip)]
    pub origin: Origin,
}

impl BuilderEntry {
    /// Its distro's package family, when known without asking the image.
    pub fn package_family(&self) -> Option<PackageFamily> {
        match self.source {
            Source::Local => Some(PackageFamily::Deb),
            Source::Upstream => self.family,
        }
    }
}

/// Where a catalog entry comes from: the catalog shipped in this binary, or
/// a user catalog (`--catalog`, `HERMETIC_CATALOG`, `$HERMETIC_HOME/catalog.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Origin {
    /// `images/catalog.toml`, embedded.
    #[default]
    Shipped,
    /// A user catalog file.
    User(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Shipped => f.write_str("shipped"),
            Origin::User(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A user catalog: builders pinned by an organisation (a mirror of the
/// manylinux images in an internal registry, its own builders), each
/// adding a baseline or replacing the shipped entry for it.
///
/// ```toml
/// format = 1
/// [[builder]]
/// glibc = "2.28"
/// reference = "registry.example/pypa/manylinux_2_28_x86_64@sha256:<64 hex>"
/// python_prefix = "/opt/python/cp311-cp311"   # optional: probed anyway
/// family = "rpm"        # optional: "deb" or "rpm", else asked of the image
/// image_id = "sha256:<64 hex>"  # optional: lets `images load` take a docker-save archive
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserCatalog {
    format: u32,
    #[serde(default)]
    builder: Vec<UserBuilder>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBuilder {
    glibc: Glibc,
    /// Only `upstream`: a user builder is an image pinned by digest.
    #[serde(default = "upstream")]
    source: Source,
    reference: String,
    python_prefix: Option<String>,
    /// `deb` or `rpm`, when known; else asked of the image at build time.
    family: Option<PackageFamily>,
    /// The image ID (`sha256:…`, the config digest), for docker-save archives.
    image_id: Option<String>,
}

fn upstream() -> Source {
    Source::Upstream
}

/// The user catalog named on the command line (`--catalog`), if any; set
/// once by the binary before any catalog lookup.
static USER_CATALOG: OnceLock<PathBuf> = OnceLock::new();

/// Names the user catalog to use instead of looking for one. Call before
/// the first [`Catalog::active`]; later calls are ignored.
pub fn use_user_catalog(path: PathBuf) {
    let _ = USER_CATALOG.set(path);
}

/// The user catalog in effect: `--catalog`, else `$HERMETIC_CATALOG` (both
/// must exist), else `$HERMETIC_HOME/catalog.toml` when there is one.
pub fn user_catalog_path() -> Option<(PathBuf, bool)> {
    if let Some(p) = USER_CATALOG.get() {
        return Some((p.clone(), true));
    }
    if let Some(p) = std::env::var_os("HERMETIC_CATALOG").filter(|p| !p.is_empty()) {
        return Some((PathBuf::from(p), true));
    }
    let p = crate::paths::home().join("catalog.toml");
    p.is_file().then_some((p, false))
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

    /// The catalog in effect: the shipped one with the user catalog, if
    /// any, laid over it (see [`user_catalog_path`]). Read once.
    pub fn active() -> Result<&'static Catalog, CatalogError> {
        static ACTIVE: OnceLock<Result<Catalog, CatalogError>> = OnceLock::new();
        ACTIVE
            .get_or_init(|| {
                let mut catalog = Catalog::embedded()?.clone();
                if let Some((path, named)) = user_catalog_path() {
                    catalog.overlay_file(&path, named)?;
                }
                Ok(catalog)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Lays the user catalog at `path` over this one. A catalog that was
    /// named (not found in `HERMETIC_HOME`) must exist.
    pub fn overlay_file(&mut self, path: &Path, named: bool) -> Result<(), CatalogError> {
        let user = |reason: String| CatalogError::User {
            path: path.to_path_buf(),
            reason,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => return Ok(()),
            Err(e) => return Err(user(e.to_string())),
        };
        self.overlay(&text, Origin::User(path.to_path_buf()))
            .map_err(|e| match e {
                CatalogError::Invalid { reason } => user(reason),
                other => other,
            })
    }

    /// Lays a user catalog document over this one: each of its builders
    /// adds its baseline or replaces the entry for it.
    pub fn overlay(&mut self, text: &str, origin: Origin) -> Result<(), CatalogError> {
        let invalid = |reason: String| CatalogError::Invalid { reason };
        let user: UserCatalog = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if user.format != 1 {
            return Err(invalid(format!(
                "format {} is not supported (this hermetic reads format 1)",
                user.format
            )));
        }
        let mut seen = Vec::new();
        for b in user.builder {
            if b.source != Source::Upstream {
                return Err(invalid(format!(
                    "builder {}: a user catalog pins images by digest (source = \"upstream\"); \
                     local builders come from the shipped catalog",
                    b.glibc
                )));
            }
            if seen.contains(&b.glibc) {
                return Err(invalid(format!("builder {} is given twice", b.glibc)));
            }
            seen.push(b.glibc);
            crate::engine::split_pinned(&b.reference)
                .map_err(|e| invalid(format!("builder {}: {e}", b.glibc)))?;
            if let Some(id) = &b.image_id {
                let hex = id.strip_prefix("sha256:").unwrap_or_default();
                if hex.len() != 64 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                    return Err(invalid(format!(
                        "builder {}: image_id `{id}` is not sha256:<64 hex digits>",
                        b.glibc
                    )));
                }
            }
            let entry = BuilderEntry {
                glibc: b.glibc,
                source: Source::Upstream,
                kind: Kind::Distro,
                reference: Some(b.reference),
                suite: None,
                python_prefix: b.python_prefix,
                family: b.family,
                image_id: b.image_id,
                origin: origin.clone(),
            };
            match self
                .builder
                .iter_mut()
                .find(|e| e.glibc == b.glibc && e.source == Source::Upstream)
            {
                Some(existing) => *existing = entry,
                None => self.builder.push(entry),
            }
        }
        self.builder
            .sort_by_key(|b| (b.glibc, b.source == Source::Local));
        Ok(())
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
                Source::Local if b.family.is_some_and(|f| f != PackageFamily::Deb) => {
                    return Err(CatalogError::Invalid {
                        reason: format!(
                            "local builder {} is made from Debian: its family is deb",
                            b.glibc
                        ),
                    });
                }
                Source::Upstream if b.kind == Kind::Toolchain => {
                    return Err(CatalogError::Invalid {
                        reason: format!(
                            "upstream builder {} cannot be a toolchain builder",
                            b.glibc
                        ),
                    });
                }
                _ => {}
            }
            let twins = catalog
                .builder
                .iter()
                .filter(|o| o.glibc == b.glibc && o.source == b.source)
                .count();
            if twins > 1 {
                return Err(CatalogError::Invalid {
                    reason: format!("more than one {:?} builder for {}", b.source, b.glibc),
                });
            }
        }
        let mut catalog = catalog;
        catalog
            .builder
            .sort_by_key(|b| (b.glibc, b.source == Source::Local));
        Ok(catalog)
    }

    /// The default builder for a baseline: its upstream one if it has one.
    pub fn builder(&self, glibc: Glibc) -> Result<&BuilderEntry, CatalogError> {
        self.builder
            .iter()
            .find(|b| b.glibc == glibc)
            .ok_or_else(|| self.unknown(glibc))
    }

    /// The package family of the builder a build of this baseline starts
    /// with (`--builder-source` is `only`), when the catalog knows it: the
    /// fallback to the local builder when no registry answers is decided
    /// only when the build runs, and asked about again then.
    pub fn planned_family(&self, glibc: Glibc, only: Option<Source>) -> Option<PackageFamily> {
        match only {
            Some(Source::Local) => self.local_builder(glibc)?.package_family(),
            _ => self.builder(glibc).ok()?.package_family(),
        }
    }

    /// The locally made builder for a baseline, if the catalog has one.
    pub fn local_builder(&self, glibc: Glibc) -> Option<&BuilderEntry> {
        self.builder
            .iter()
            .find(|b| b.glibc == glibc && b.source == Source::Local)
    }

    fn unknown(&self, glibc: Glibc) -> CatalogError {
        let mut known: Vec<String> = self.builder.iter().map(|b| b.glibc.to_string()).collect();
        known.dedup();
        CatalogError::UnknownBaseline { glibc, known }
    }

    /// Baselines with a local builder, for hints.
    pub fn local_baselines(&self) -> Vec<Glibc> {
        self.baselines_with(Source::Local)
    }

    /// Baselines that have a builder of this source.
    pub fn baselines_with(&self, source: Source) -> Vec<Glibc> {
        self.builder
            .iter()
            .filter(|b| b.source == source)
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
        let sha = |text: &str| crate::archive::sha256_bytes(text.as_bytes());
        let inputs = match entry.kind {
            Kind::Distro => serde_json::json!({
                "format": LOCAL_IMAGE_FORMAT,
                "glibc": entry.glibc,
                "base": self.base_inputs_hash(suite),
                // The shape of the whole `[local]` table before toolchain
                // builders existed: distro builders keep their cache key.
                "local": {
                    "mirror": self.local.mirror,
                    "source_date_epoch": self.local.source_date_epoch,
                    "dockerfile": self.local.dockerfile,
                    "python": self.local.python,
                },
                "dockerfile_sha256": sha(BUILDER_DOCKERFILE),
            }),
            Kind::Toolchain => serde_json::json!({
                "format": LOCAL_IMAGE_FORMAT,
                "kind": "toolchain",
                "glibc": entry.glibc,
                "base": self.base_inputs_hash(suite),
                "source_date_epoch": self.local.source_date_epoch,
                "python": self.local.python,
                // Only the libraries this baseline builds: a library added
                // for an older baseline leaves newer builders' keys alone.
                "toolchain": {
                    "dockerfile": self.local.toolchain.dockerfile,
                    "zig": self.local.toolchain.zig,
                    "libraries": self.local.toolchain.libraries_for(entry.glibc),
                },
                "dockerfile_sha256": sha(TOOLCHAIN_DOCKERFILE),
                "cc_sha256": sha(TOOLCHAIN_CC),
                "libraries_sha256": sha(TOOLCHAIN_LIBRARIES),
            }),
        };
        crate::archive::sha256_bytes(inputs.to_string().as_bytes())
    }
}

/// Errors in the catalog's data or in lookups against it.
#[derive(Debug, Clone, thiserror::Error)]
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

    /// A user catalog that cannot be read, parsed or checked.
    #[error("user catalog {}: {reason}", path.display())]
    User {
        /// The file.
        path: PathBuf,
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
            CatalogError::User { .. } => Some(
                "a user catalog has `format = 1` and [[builder]] entries with glibc, \
                 reference = \"name@sha256:<digest>\" and optionally python_prefix and \
                 family (\"deb\" or \"rpm\")"
                    .into(),
            ),
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

    const PINNED: &str = "registry.example/pypa/manylinux_2_28_x86_64@sha256:0c87ccb5996dab6c3b7612ee4fda7b80c4ab3c44a86c2541e4a872afdf4f131b";

    #[test]
    fn a_user_catalog_replaces_and_adds_builders_and_says_where_from() {
        let mut c = Catalog::embedded().unwrap().clone();
        let origin = Origin::User("/etc/hermetic/catalog.toml".into());
        let text = format!(
            "format = 1\n[[builder]]\nglibc = \"2.28\"\nreference = \"{PINNED}\"\n\
             [[builder]]\nglibc = \"2.24\"\nreference = \"{PINNED}\"\npython_prefix = \"/opt/py\"\n"
        );
        c.overlay(&text, origin.clone()).unwrap();
        let b28 = c.builder("2.28".parse().unwrap()).unwrap();
        assert_eq!(b28.reference.as_deref(), Some(PINNED));
        assert_eq!(b28.origin, origin);
        let b24 = c.builder("2.24".parse().unwrap()).unwrap();
        assert_eq!(b24.python_prefix.as_deref(), Some("/opt/py"));
        assert_eq!(
            c.builder("2.31".parse().unwrap()).unwrap().origin,
            Origin::Shipped
        );
        assert_eq!(origin.to_string(), "/etc/hermetic/catalog.toml");
        // The overlay replaced the upstream 2.28 entry and kept the local
        // toolchain one as its fallback.
        let local28 = c.local_builder("2.28".parse().unwrap()).unwrap();
        assert_eq!(local28.kind, Kind::Toolchain);
        assert_eq!(local28.origin, Origin::Shipped);
        // Sorted by baseline, upstream first, one entry per baseline and source.
        let order: Vec<(Glibc, bool)> = c
            .builder
            .iter()
            .map(|b| (b.glibc, b.source == Source::Local))
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(order, sorted);
    }

    #[test]
    fn a_baseline_has_at_most_one_upstream_and_one_local_builder() {
        let two_local = "format = 1
[local]
";
        assert!(Catalog::parse(two_local).is_err());
        let dup = CATALOG_TOML.replace(
            "glibc = \"2.28\"\nsource = \"local\"",
            "glibc = \"2.31\"\nsource = \"local\"",
        );
        assert_ne!(dup, CATALOG_TOML);
        let err = Catalog::parse(&dup).unwrap_err().to_string();
        assert!(
            err.contains("more than one Local builder for 2.31"),
            "{err}"
        );
        let upstream_toolchain = CATALOG_TOML.replace(
            "glibc = \"2.28\"\nsource = \"local\"\nkind = \"toolchain\"",
            "glibc = \"2.27\"\nsource = \"upstream\"\nkind = \"toolchain\"\nreference = \"x@sha256:00\"",
        );
        let err = Catalog::parse(&upstream_toolchain).unwrap_err().to_string();
        assert!(err.contains("cannot be a toolchain builder"), "{err}");
    }

    #[test]
    fn the_default_builder_is_upstream_and_the_toolchain_one_is_the_fallback() {
        let c = Catalog::embedded().unwrap();
        let g28: Glibc = "2.28".parse().unwrap();
        assert_eq!(c.builder(g28).unwrap().source, Source::Upstream);
        let local = c.local_builder(g28).unwrap();
        assert_eq!(
            (local.kind, local.suite.as_deref()),
            (Kind::Toolchain, Some("bullseye"))
        );
        // A distro builder keeps its kind by default, and the two hash apart.
        let g31: Glibc = "2.31".parse().unwrap();
        let b31 = c.local_builder(g31).unwrap();
        assert_eq!(b31.kind, Kind::Distro);
        assert_ne!(c.builder_inputs_hash(local), c.builder_inputs_hash(b31));
        assert_eq!(Kind::Toolchain.to_string(), "toolchain");
        let g17: Glibc = "2.17".parse().unwrap();
        assert_eq!(c.builder(g17).unwrap().source, Source::Upstream);
        assert_eq!(c.local_builder(g17).unwrap().kind, Kind::Toolchain);
    }

    #[test]
    fn each_toolchain_baseline_builds_only_the_libraries_it_needs() {
        let c = Catalog::embedded().unwrap();
        let names = |g: &str| -> Vec<String> {
            let toolchain = &c.local.toolchain;
            toolchain
                .libraries_for(g.parse().unwrap())
                .iter()
                .map(|l| l.name.clone())
                .collect()
        };
        assert_eq!(names("2.28"), ["sqlite"]);
        assert_eq!(
            names("2.17"),
            [
                "sqlite",
                "openssl",
                "libuuid",
                "libxcrypt",
                "libtirpc",
                "libnsl"
            ]
        );
        assert!(names("2.29").is_empty());
        // A library needed only below 2.25 leaves the 2.28 builder's key alone.
        let g28 = c.local_builder("2.28".parse().unwrap()).unwrap();
        let before = c.builder_inputs_hash(g28);
        let mut more = c.clone();
        more.local.toolchain.library[1].version = "9.9".into();
        assert_eq!(more.builder_inputs_hash(g28), before);
        more.local.toolchain.library[0].sha256 = "00".into();
        assert_ne!(more.builder_inputs_hash(g28), before);
        let arg = c.local.toolchain.library[0].build_arg();
        assert!(
            arg.starts_with("sqlite=http://")
                && arg
                    .ends_with("=d0cdd2ece271b29e7ce18095745d892517ee26d0f270065b3a25c2e9eb11639c"),
            "{arg}"
        );
    }

    #[test]
    fn a_user_catalog_must_pin_by_digest_and_say_its_format() {
        let mut c = Catalog::embedded().unwrap().clone();
        let cases = [
            (
                "format = 1\n[[builder]]\nglibc = \"2.28\"\nreference = \"quay.io/pypa/manylinux_2_28_x86_64:latest\"\n",
                "not pinned",
            ),
            ("format = 2\n", "format 2"),
            (
                "format = 1\n[[builder]]\nglibc = \"2.28\"\nsource = \"local\"\nreference = \"x\"\n",
                "pins images by digest",
            ),
            (
                "format = 1\n[[builder]]\nglibc = \"2.28\"\nreference = \"x\"\nsuite = \"bullseye\"\n",
                "unknown field",
            ),
            (
                "format = 1\n[[builder]]\nglibc = \"two\"\nreference = \"x\"\n",
                "invalid glibc",
            ),
        ];
        for (text, want) in cases {
            let err = c.overlay(text, Origin::Shipped).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let twice = format!(
            "format = 1\n[[builder]]\nglibc = \"2.28\"\nreference = \"{PINNED}\"\n\
             [[builder]]\nglibc = \"2.28\"\nreference = \"{PINNED}\"\n"
        );
        let err = c.overlay(&twice, Origin::Shipped).unwrap_err().to_string();
        assert!(err.contains("given twice"), "{err}");
    }

    #[test]
    fn a_named_user_catalog_must_exist_and_errors_name_the_file() {
        let mut c = Catalog::embedded().unwrap().clone();
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        c.overlay_file(&missing, false).unwrap();
        let err = c.overlay_file(&missing, true).unwrap_err().to_string();
        assert!(err.contains("nope.toml"), "{err}");
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "format = 1\n[[builder]]\nglibc = \"2.28\"\n").unwrap();
        let err = c.overlay_file(&bad, false).unwrap_err();
        assert!(matches!(err, CatalogError::User { .. }), "{err:?}");
        assert!(err.to_string().contains("bad.toml"), "{err}");
        assert!(err.to_string().contains("reference"), "{err}");
    }
}

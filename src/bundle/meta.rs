//! `share/hermetic/bundle.json`: what went into a bundle, recorded by
//! `hermetic build` inside the bundle so that later commands (`hermetic sbom`,
//! `hermetic image`, `hermetic verify`) can work from the bundle alone.
//!
//! Everything here is deterministic: no timestamps other than
//! `source_date_epoch`, lists sorted, no host names or build paths.

use serde::{Deserialize, Serialize};

/// The metadata of one bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleMeta {
    /// Format version of this file.
    pub format: u32,
    /// Bundle name (also its top directory).
    pub name: String,
    /// Bundle version, from the recipe.
    pub version: String,
    /// glibc baseline, e.g. "2.31".
    pub glibc: crate::glibc::Glibc,
    /// Entry points exposed as launchers at the bundle top.
    pub launchers: Vec<String>,
    /// The CPython runtime inside.
    pub python: PythonRuntime,
    /// The builder image it was built in.
    pub builder: BuilderImage,
    /// Wheels and sdists fetched with hash checks, sorted by filename.
    pub inputs: Vec<FetchedInput>,
    /// Debian packages installed into the builder for this build (build-time only).
    pub system_packages: Vec<OsPackage>,
    /// Libraries copied into the bundle by the repair step, sorted by path.
    pub vendored_libs: Vec<VendoredLib>,
    /// Files produced by the recipe's own build commands, sorted by path.
    pub native_files: Vec<NativeFile>,
    /// `SOURCE_DATE_EPOCH`: every timestamp in the bundle.
    pub source_date_epoch: u64,
    /// Source tree hash of the local project, if any.
    pub source_tree_sha256: Option<String>,
    /// SHA-256 of the recipe file.
    pub recipe_sha256: String,
}

/// The CPython runtime inside the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonRuntime {
    /// Full version, e.g. "3.11.2".
    pub version: String,
    /// Where its source tarball came from (upstream builders: the python.org
    /// release their CPython is built from, with no hash of ours).
    pub source_url: Option<String>,
    /// Hex SHA-256 of that tarball, when hermetic checked it.
    pub source_sha256: Option<String>,
    /// Path relative to the bundle top (`python/runtime`).
    pub path: String,
}

/// The builder image the bundle was built in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuilderImage {
    /// Pinned reference (`name@sha256:…`) or local tag.
    pub reference: String,
    /// Image ID (`sha256:…`).
    pub image_id: String,
    /// Distro of the builder, e.g. "debian-11" (for purl qualifiers).
    pub distro: String,
}

/// What kind of Python input a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    /// A built distribution (`.whl`).
    Wheel,
    /// A source distribution, built in the builder.
    Sdist,
}

/// One fetched wheel or sdist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchedInput {
    /// File name as fetched.
    pub filename: String,
    /// Hex SHA-256 of the file, checked against the recipe's hashes.
    pub sha256: String,
    /// Wheel or sdist.
    pub kind: InputKind,
    /// Normalised project name (PEP 503).
    pub project: String,
    /// Project version.
    pub version: String,
}

/// A Debian (or RPM) package with its exact version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsPackage {
    /// Package name.
    pub name: String,
    /// Exact package version.
    pub version: String,
    /// Package architecture (e.g. `amd64`).
    pub arch: String,
    /// "deb" or "rpm".
    pub kind: String,
}

/// One library vendored by the repair step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendoredLib {
    /// Path in the bundle, relative to its top (e.g. `lib/libyaml-0-1a2b3c4d.so.2`).
    pub path: String,
    /// SONAME it had in the builder (e.g. `libyaml-0.so.2`).
    pub original_soname: String,
    /// Where it was found in the builder.
    pub source_path: String,
    /// Hex SHA-256 of the vendored copy.
    pub sha256: String,
    /// The OS package that owned it in the builder, if any.
    pub package: Option<OsPackage>,
}

/// A file built by the recipe's commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NativeFile {
    /// Path in the bundle, relative to its top.
    pub path: String,
    /// Hex SHA-256 of the file.
    pub sha256: String,
}

impl BundleMeta {
    /// Current format version.
    pub const FORMAT: u32 = 1;

    /// Canonical JSON (see [`crate::json`]): the same metadata gives the
    /// same bytes.
    pub fn to_canonical_json(&self) -> Result<Vec<u8>, crate::json::JsonError> {
        crate::json::canonical_pretty("bundle.json", self)
    }
}

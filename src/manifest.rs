//! The build record: the JSON document machines hand each other to know
//! what went into a release and what came out. Canonical: keys sorted (via
//! `serde_json::Value`'s ordered map), no floats, lists in a fixed order, so
//! that the same build writes the same bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::bundle::{FetchedInput, OsPackage};
use crate::glibc::Glibc;

/// Format version of the record. 2: the derived builder's image ID is no
/// longer recorded (it is remade from the recorded packages, and its ID
/// depends on when). 3: a local builder is recorded with the catalog
/// inputs hash and the package versions it was made from, and its image ID
/// is reproducible, so `verify` can remake it on another machine. 4: the
/// source tree's entries are listed (`source_files`), so a verifier's tree
/// that differs is named file by file.
pub const RECORD_FORMAT: u32 = 4;

/// Everything needed to rebuild a bundle and check the result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildRecord {
    /// Record format version ([`RECORD_FORMAT`] when written).
    pub format: u32,
    /// Version of the hermetic that made the build.
    pub hermetic_version: String,
    /// Bundle name, from the recipe.
    pub name: String,
    /// Bundle version, from the recipe.
    pub version: String,
    /// glibc baseline the bundle was built for.
    pub glibc: Glibc,
    /// The recipe the build ran from.
    pub recipe: RecordedRecipe,
    /// Hex SHA-256 of the source tree (the recipe's directory, by [`BuildRecord::source_rule`]).
    pub source_tree_sha256: String,
    /// Which files of the recipe's directory the source tree hash covers.
    #[serde(default)]
    pub source_rule: SourceRule,
    /// What the source tree hash covers, entry by entry
    /// ([`crate::archive::SourceTree`]), so a tree that differs at verify
    /// time is named file by file (format 4).
    #[serde(default)]
    pub source_files: BTreeMap<String, String>,
    /// The builder image the build ran in.
    pub builder: RecordedBuilder,
    /// Packages installed into the builder for this build, at their exact versions.
    pub system_packages: Vec<OsPackage>,
    /// Wheels and sdists fetched with hash checks.
    pub inputs: Vec<FetchedInput>,
    /// `SOURCE_DATE_EPOCH`: every timestamp in the outputs.
    pub source_date_epoch: u64,
    /// The release files the build wrote.
    pub outputs: Vec<RecordedOutput>,
}

/// Which files make the build context (and its tree hash).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceRule {
    /// In a git checkout: the files git tracks, plus the recipe and the
    /// requirement files it names; untracked stray files are left out.
    Git,
    /// Outside git: every file of the directory.
    #[default]
    Directory,
}

/// The recipe, by path (relative to where hermetic ran) and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedRecipe {
    /// Path of the recipe, relative to where hermetic ran.
    pub path: String,
    /// Hex SHA-256 of the recipe file.
    pub sha256: String,
}

/// The builder image. The image derived from it with the recipe's system
/// packages is not recorded by ID: it is a cache, remade from the builder
/// and [`BuildRecord::system_packages`] at their recorded versions, and its
/// ID changes each time it is made.
///
/// An upstream builder is pinned by its registry digest (`reference`). A
/// local one by content: its image ID, reproducible from the catalog inputs
/// (`inputs_hash`) at the recorded package versions, which is what `verify`
/// remakes it from where it is missing; `reference` is only its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedBuilder {
    /// Upstream: `name@sha256:…`, the pin; local: the tag, a name only.
    pub reference: String,
    /// Image ID (`sha256:…`).
    pub image_id: String,
    /// The glibc found inside it.
    pub glibc: Glibc,
    /// Local builders: the catalog inputs hash it was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs_hash: Option<String>,
    /// Local builders: the Debian packages inside it, name -> version.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub packages: std::collections::BTreeMap<String, String>,
}

/// One output file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedOutput {
    /// File name in the output directory.
    pub name: String,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

impl BuildRecord {
    /// Canonical JSON bytes (see [`crate::json`]).
    pub fn to_canonical_json(&self) -> Result<Vec<u8>, crate::json::JsonError> {
        crate::json::canonical_pretty("the build record", self)
    }
}

/// A record with one of everything, for unit tests.
#[cfg(test)]
pub(crate) fn sample_record() -> BuildRecord {
    use crate::bundle::{FetchedInput, InputKind, OsPackage};
    BuildRecord {
        format: RECORD_FORMAT,
        hermetic_version: "0.1.0".into(),
        name: "demo".into(),
        version: "1.0".into(),
        glibc: Glibc::new(2, 31),
        recipe: RecordedRecipe {
            path: "hermetic.toml".into(),
            sha256: "aa".repeat(32),
        },
        source_tree_sha256: "bb".repeat(32),
        source_rule: SourceRule::Git,
        source_files: [("hermetic.toml".to_string(), "ee".repeat(32))].into(),
        builder: RecordedBuilder {
            reference: "hermetic/builder:glibc2.31-x".into(),
            image_id: format!("sha256:{}", "cc".repeat(32)),
            glibc: Glibc::new(2, 31),
            inputs_hash: Some("dd".repeat(32)),
            packages: [("libc6".to_string(), "2.31-13+deb11u11".to_string())].into(),
        },
        system_packages: vec![OsPackage {
            name: "libyaml-dev".into(),
            version: "0.2.2-1".into(),
            arch: "amd64".into(),
            kind: "deb".into(),
        }],
        inputs: vec![FetchedInput {
            filename: "PyYAML-6.0.1.tar.gz".into(),
            sha256: "ee".repeat(32),
            kind: InputKind::Sdist,
            project: "pyyaml".into(),
            version: "6.0.1".into(),
        }],
        source_date_epoch: 1700000000,
        outputs: vec![
            RecordedOutput {
                name: "demo-1.0-glibc2.31-x86_64.tar.gz".into(),
                sha256: "11".repeat(32),
                size: 10,
            },
            RecordedOutput {
                name: "demo-1.0-glibc2.31-x86_64.cdx.json".into(),
                sha256: "22".repeat(32),
                size: 5,
            },
        ],
    }
}

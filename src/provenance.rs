//! The build record as an in-toto Statement v1 carrying a SLSA Provenance
//! v1 predicate (`<stem>.intoto.json` beside the record).
//!
//! Everything in it comes from the [`BuildRecord`] and the record's own
//! hash, so the same build writes the same bytes: there is no
//! `invocationId`, `startedOn` or `finishedOn` (all optional in SLSA v1),
//! and nothing about the machine, user or paths. Keys are sorted (through
//! `serde_json::Value`), lists keep the record's fixed order.
//!
//! The subjects are the record's outputs (archive, SBOM). The record itself
//! is a byproduct, named with its hash; the record does not list the
//! statement, which keeps the two free of a hash cycle. `SHA256SUMS` lists
//! both. The statement is unsigned: wrap it in a DSSE envelope with your
//! own key (cosign, in-toto's tools) to make it an attestation. The fields
//! are described in `sbom/PROVENANCE.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::manifest::BuildRecord;
use crate::purl;

/// `_type` of every in-toto v1 statement.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// SLSA Provenance v1.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What kind of build this is; its parameters are documented in
/// `sbom/PROVENANCE.md`.
pub const BUILD_TYPE: &str = "urn:hermetic:build-type:bundle:v1";
/// The build platform: hermetic driving the local container engine.
pub const BUILDER_ID: &str = "urn:hermetic:builder:local-engine";
/// Suffix of the statement's file name (after the archive's stem).
pub const SUFFIX: &str = ".intoto.json";

/// An in-toto Statement v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// `_type`: the in-toto Statement type URI.
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// The artifacts the statement is about, by name and digest.
    pub subject: Vec<ResourceDescriptor>,
    /// `predicateType`: the SLSA Provenance v1 URI.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The provenance itself.
    pub predicate: Provenance,
}

/// An in-toto ResourceDescriptor: a file, package or image, by name, URI
/// and digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDescriptor {
    /// A file name or package name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where it is, or a package URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Digests by algorithm (`sha256` -> hex).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
    /// The media type, e.g. `application/json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Extra facts, under `hermetic:` keys.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, serde_json::Value>,
}

/// SLSA Provenance v1 predicate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    /// What the build was asked to do and what it used.
    pub build_definition: BuildDefinition,
    /// Who ran the build.
    pub run_details: RunDetails,
}

/// SLSA `buildDefinition`: the build's type, parameters and inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    /// [`BUILD_TYPE`].
    pub build_type: String,
    /// What the recipe asked for: name, version, glibc, recipe path and digest, epoch.
    pub external_parameters: serde_json::Value,
    /// How hermetic ran: the record format and its network policy.
    pub internal_parameters: serde_json::Value,
    /// The fetched inputs and the system packages installed.
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

/// SLSA `runDetails`: the builder and the byproducts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunDetails {
    /// The build platform.
    pub builder: Builder,
    /// Files made alongside the subjects (the build record).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub byproducts: Vec<ResourceDescriptor>,
}

/// SLSA `builder`: the build platform by ID and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Builder {
    /// [`BUILDER_ID`].
    pub id: String,
    /// Component versions (`hermetic` -> its version).
    pub version: BTreeMap<String, String>,
}

fn sha256(hex: &str) -> BTreeMap<String, String> {
    let hex = hex.strip_prefix("sha256:").unwrap_or(hex);
    BTreeMap::from([("sha256".to_string(), hex.to_string())])
}

fn note(pairs: &[(&str, &str)]) -> BTreeMap<String, serde_json::Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect()
}

/// The statement for a record whose canonical bytes are named `record_name`
/// and hash to `record_sha256`.
pub fn statement(record: &BuildRecord, record_name: &str, record_sha256: &str) -> Statement {
    let subject = record
        .outputs
        .iter()
        .map(|o| ResourceDescriptor {
            name: Some(o.name.clone()),
            digest: sha256(&o.sha256),
            ..Default::default()
        })
        .collect();

    let distro = record.builder.glibc.distro_id();
    let mut deps = Vec::new();
    deps.push(ResourceDescriptor {
        name: Some("source".into()),
        digest: sha256(&record.source_tree_sha256),
        annotations: note(&[(
            "hermetic:digest-of",
            "the build context directory as archive::tree_hash sees it \
             (relative paths, file contents, executable bits, symlink targets)",
        )]),
        ..Default::default()
    });
    let image = purl::oci_image(&record.builder.reference, &record.builder.image_id);
    let mut builder_notes = note(&[
        ("hermetic:image-reference", &record.builder.reference),
        ("hermetic:image-id", &record.builder.image_id),
        ("hermetic:glibc", &record.builder.glibc.to_string()),
    ]);
    builder_notes.insert("hermetic:distro".into(), distro.into());
    deps.push(ResourceDescriptor {
        name: Some("builder-image".into()),
        uri: Some(image.purl.clone()),
        digest: sha256(image.digest),
        annotations: builder_notes,
        ..Default::default()
    });
    for input in &record.inputs {
        let kind = match input.kind {
            crate::bundle::InputKind::Wheel => "wheel",
            crate::bundle::InputKind::Sdist => "sdist",
        };
        deps.push(ResourceDescriptor {
            name: Some(input.filename.clone()),
            uri: Some(purl::pypi(&input.project, &input.version)),
            digest: sha256(&input.sha256),
            annotations: note(&[("hermetic:input-kind", kind)]),
            ..Default::default()
        });
    }
    for package in &record.system_packages {
        deps.push(ResourceDescriptor {
            name: Some(package.name.clone()),
            uri: Some(purl::os_package(package, distro)),
            ..Default::default()
        });
    }

    Statement {
        statement_type: STATEMENT_TYPE.into(),
        subject,
        predicate_type: PREDICATE_TYPE.into(),
        predicate: Provenance {
            build_definition: BuildDefinition {
                build_type: BUILD_TYPE.into(),
                external_parameters: serde_json::json!({
                    "name": record.name,
                    "version": record.version,
                    "glibc": record.glibc,
                    "recipe": {
                        "path": record.recipe.path,
                        "digest": sha256(&record.recipe.sha256),
                    },
                    "sourceDateEpoch": record.source_date_epoch,
                }),
                internal_parameters: serde_json::json!({
                    "recordFormat": record.format,
                    "network": {
                        "fetch": "pip download --require-hashes, checked against the recipe's hashes",
                        "build": "none",
                    },
                }),
                resolved_dependencies: deps,
            },
            run_details: RunDetails {
                builder: Builder {
                    id: BUILDER_ID.into(),
                    version: BTreeMap::from([(
                        "hermetic".to_string(),
                        record.hermetic_version.clone(),
                    )]),
                },
                byproducts: vec![ResourceDescriptor {
                    name: Some(record_name.to_string()),
                    digest: sha256(record_sha256),
                    media_type: Some("application/json".into()),
                    annotations: note(&[("hermetic:role", "build record")]),
                    ..Default::default()
                }],
            },
        },
    }
}

impl Statement {
    /// Canonical JSON bytes: sorted keys, two-space indent, final newline.
    pub fn to_canonical_json(&self) -> Result<Vec<u8>, crate::json::JsonError> {
        crate::json::canonical_pretty("the provenance statement", self)
    }

    /// Every file the statement names with a SHA-256 (subjects and
    /// byproducts), as (name, hex) pairs.
    pub fn named_files(&self) -> Vec<(String, String)> {
        self.subject
            .iter()
            .chain(&self.predicate.run_details.byproducts)
            .filter_map(|d| Some((d.name.clone()?, d.digest.get("sha256")?.clone())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::sample_record as record;

    #[test]
    fn statement_binds_outputs_inputs_and_the_record() {
        let s = statement(&record(), "demo.build.json", &"33".repeat(32));
        let v: serde_json::Value = serde_json::from_slice(&s.to_canonical_json().unwrap()).unwrap();
        assert_eq!(v["_type"], STATEMENT_TYPE);
        assert_eq!(v["predicateType"], PREDICATE_TYPE);
        assert_eq!(v["subject"][0]["digest"]["sha256"], "11".repeat(32));
        let bd = &v["predicate"]["buildDefinition"];
        assert_eq!(bd["externalParameters"]["sourceDateEpoch"], 1700000000);
        assert_eq!(
            bd["externalParameters"]["recipe"]["digest"]["sha256"],
            "aa".repeat(32)
        );
        let deps = bd["resolvedDependencies"].as_array().unwrap();
        let uris: Vec<&str> = deps.iter().filter_map(|d| d["uri"].as_str()).collect();
        assert!(uris.contains(&"pkg:pypi/pyyaml@6.0.1"), "{uris:?}");
        assert!(
            uris.contains(&"pkg:deb/debian/libyaml-dev@0.2.2-1?arch=amd64&distro=debian-11"),
            "{uris:?}"
        );
        // Image digests lose their "sha256:" prefix inside a digest set.
        assert_eq!(deps[1]["digest"]["sha256"], "cc".repeat(32));
        // The derived builder (a cache, remade from the recorded packages)
        // is not a dependency: source, builder, the input, the package.
        assert_eq!(deps.len(), 4, "{deps:?}");
        assert_eq!(deps[2]["name"], "PyYAML-6.0.1.tar.gz");
        assert_eq!(deps[2]["digest"]["sha256"], "ee".repeat(32));
        let by = &v["predicate"]["runDetails"]["byproducts"][0];
        assert_eq!(by["name"], "demo.build.json");
        assert_eq!(by["digest"]["sha256"], "33".repeat(32));
        // Nothing that changes between runs of the same build.
        let text = String::from_utf8(s.to_canonical_json().unwrap()).unwrap();
        for word in ["startedOn", "finishedOn", "invocationId"] {
            assert!(!text.contains(word), "{word} in {text}");
        }
    }

    #[test]
    fn same_record_same_bytes_and_round_trip() {
        let a = statement(&record(), "r.build.json", &"33".repeat(32))
            .to_canonical_json()
            .unwrap();
        let b = statement(&record(), "r.build.json", &"33".repeat(32))
            .to_canonical_json()
            .unwrap();
        assert_eq!(a, b);
        let back: Statement = serde_json::from_slice(&a).unwrap();
        assert_eq!(back.to_canonical_json().unwrap(), a);
        let files = back.named_files();
        assert_eq!(files.len(), 3);
        assert_eq!(files[2], ("r.build.json".to_string(), "33".repeat(32)));
    }
}

//! SBOM of a fixture bundle: content, determinism, golden file, schema
//! validation by CycloneDX's own tooling, and errors on corrupt inputs.
//!
//! The fixture bundle is written by `fixture_bundle` below: dist-info
//! directories with METADATA/RECORD, a bundle.json, and tiny ELF files from
//! `tests/fixtures/sbom/elf/` (committed, built by `build-elf.sh`, so that
//! their hashes — and the golden SBOM — do not depend on the host compiler).
//!
//! Schema validation runs `tests/validate_cdx.py` with the Python found in
//! `HERMETIC_VALIDATORS_PYTHON` (default `/opt/hermetic-validators/bin/python`,
//! the venv `scripts/setup` makes, with `cyclonedx-python-lib[json-validation]`). Without it the tests
//! skip validation loudly, or fail under `CI=true`.
//!
//! `HERMETIC_BLESS=1 cargo test --test sbom_bundle` rewrites the golden SBOM.

// Tests fail by panicking: unwrap, expect and panic! are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

mod common;

use cyclonedx_bom::validation::Validate;
use hermetic::bundle::meta::{BuilderImage, PythonRuntime};
use hermetic::bundle::{BundleMeta, FetchedInput, InputKind, NativeFile, OsPackage, VendoredLib};
use hermetic::sbom::{self, SbomError};
use serde_json::Value;
use sha2::{Digest, Sha256};

const NAME: &str = "demo-app";
const SITE: &str = "python/runtime/lib/python3.11/site-packages";
const ELF_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sbom/elf");
const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/sbom/golden/demo-app.cdx.json");
const SPEC_PIN: &str = include_str!("../sbom/spec-version");

/// (dist-info dir, METADATA headers, files in RECORD besides dist-info's own)
const DISTS: &[(&str, &str, &[&str])] = &[
    (
        "requests-2.31.0.dist-info",
        "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nSummary: Python HTTP for Humans.\n\
         License: Apache 2.0\nClassifier: License :: OSI Approved :: Apache Software License\n\
         Requires-Dist: charset-normalizer (<4,>=2)\nRequires-Dist: idna (<4,>=2.5)\n\
         Requires-Dist: urllib3 (<3,>=1.21.1)\nRequires-Dist: certifi (>=2017.4.17)\n\
         Requires-Dist: PySocks (!=1.5.7,>=1.5.6) ; extra == 'socks'\n",
        &["requests/__init__.py"],
    ),
    (
        "charset_normalizer-3.3.2.dist-info",
        "Metadata-Version: 2.1\nName: charset-normalizer\nVersion: 3.3.2\nLicense: MIT\n",
        &["charset_normalizer/__init__.py"],
    ),
    (
        "idna-3.6.dist-info",
        "Metadata-Version: 2.1\nName: idna\nVersion: 3.6\n\
         Classifier: License :: OSI Approved :: BSD License\n",
        &["idna/__init__.py"],
    ),
    (
        "urllib3-2.1.0.dist-info",
        "Metadata-Version: 2.4\nName: urllib3\nVersion: 2.1.0\nLicense-Expression: MIT\n\
         Requires-Dist: brotli>=1.0.9; platform_python_implementation == \"CPython\" and extra == \"brotli\"\n",
        &["urllib3/__init__.py"],
    ),
    (
        "certifi-2023.11.17.dist-info",
        "Metadata-Version: 2.1\nName: certifi\nVersion: 2023.11.17\nLicense: MPL-2.0\n",
        &["certifi/__init__.py", "certifi/cacert.pem"],
    ),
    (
        "PyYAML-6.0.1.dist-info",
        "Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0.1\nLicense: MIT\n",
        &[
            "yaml/__init__.py",
            "yaml/_yaml.cpython-311-x86_64-linux-gnu.so",
        ],
    ),
    (
        "zope.interface-6.1.dist-info",
        "Metadata-Version: 2.1\nName: zope.interface\nVersion: 6.1\nLicense: ZPL 2.1\n\
         Classifier: License :: OSI Approved :: Zope Public License\n\
         Requires-Dist: setuptools\n",
        &["zope/interface/__init__.py"],
    ),
    (
        "demo_app-1.2.3.dist-info",
        "Metadata-Version: 2.4\nName: demo-app\nVersion: 1.2.3\n\
         License-Expression: MIT OR Apache-2.0\nRequires-Dist: requests>=2\n\
         Requires-Dist: PyYAML\nRequires-Dist: zope.interface\n\
         Requires-Dist: typing-extensions; python_version < \"3.8\"\n\n\
         Long description body: not a header.\n",
        &["demo_app/__init__.py", "../../../bin/demo-app"],
    ),
];

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

fn copy_elf(name: &str, to: &Path) -> String {
    let bytes = std::fs::read(Path::new(ELF_DIR).join(name)).expect("fixture ELF");
    write(to, &bytes);
    sha256_hex(&bytes)
}

/// Writes the fixture bundle under `root` and returns its top directory.
fn fixture_bundle(root: &Path) -> PathBuf {
    let top = root.join(NAME);
    write(
        &top.join(NAME),
        b"#!/bin/sh\nexec python -m demo_app \"$@\"\n",
    );

    let mut inputs = Vec::new();
    for (dir, metadata, files) in DISTS {
        let dist_info = top.join(SITE).join(dir);
        write(&dist_info.join("METADATA"), metadata.as_bytes());
        let mut record = String::new();
        for file in files.iter() {
            let path = dist_info.parent().expect("site").join(file);
            if file.ends_with(".so") {
                copy_elf(file.rsplit('/').next().expect("name"), &path);
            } else {
                write(&path, format!("# {file}\n").as_bytes());
            }
            record.push_str(&format!("{file},,\n"));
        }
        record.push_str(&format!("{dir}/METADATA,,\n{dir}/RECORD,,\n"));
        write(&dist_info.join("RECORD"), record.as_bytes());

        let name = field(metadata, "Name");
        let version = field(metadata, "Version");
        let project = name.to_lowercase().replace(['_', '.'], "-");
        let (filename, kind) = if project == "demo-app" {
            (format!("demo_app-{version}.tar.gz"), InputKind::Sdist)
        } else {
            let stem = name.replace(['-', '.'], "_");
            (
                format!("{stem}-{version}-py3-none-any.whl"),
                InputKind::Wheel,
            )
        };
        inputs.push(FetchedInput {
            sha256: sha256_hex(filename.as_bytes()),
            filename,
            kind,
            project,
            version,
        });
    }
    inputs.sort_by(|a, b| a.filename.cmp(&b.filename));

    let runtime_module =
        "python/runtime/lib/python3.11/lib-dynload/_bar.cpython-311-x86_64-linux-gnu.so";
    copy_elf(
        "_bar.cpython-311-x86_64-linux-gnu.so",
        &top.join(runtime_module),
    );

    let deb = |name: &str, version: &str| OsPackage {
        name: name.into(),
        version: version.into(),
        arch: "amd64".into(),
        kind: "deb".into(),
    };
    let mut vendored_libs = Vec::new();
    for (file, soname, package) in [
        ("libbar-9c0d1e2f.so.0", "libbar.so.0", None),
        (
            "libfoo-5e6f7a8b.so.1",
            "libfoo.so.1",
            Some(deb("libfoo1", "1:2.0+dfsg-3")),
        ),
        (
            "libyaml-0-1a2b3c4d.so.2",
            "libyaml-0.so.2",
            Some(deb("libyaml-0-2", "0.2.5-1")),
        ),
    ] {
        let path = format!("lib/{file}");
        let sha256 = copy_elf(file, &top.join(&path));
        vendored_libs.push(VendoredLib {
            path,
            original_soname: soname.into(),
            source_path: format!("/usr/lib/x86_64-linux-gnu/{soname}"),
            sha256,
            package,
        });
    }
    let native_sha = copy_elf("app-native", &top.join("bin/app-native"));

    let meta = BundleMeta {
        format: BundleMeta::FORMAT,
        name: NAME.into(),
        version: "1.2.3".into(),
        glibc: "2.31".parse().unwrap(),
        launchers: vec![NAME.into()],
        python: PythonRuntime {
            version: "3.11.9".into(),
            source_url: Some(
                "https://www.python.org/ftp/python/3.11.9/Python-3.11.9.tar.xz".into(),
            ),
            source_sha256: Some(sha256_hex(b"Python-3.11.9.tar.xz")),
            path: "python/runtime".into(),
        },
        builder: BuilderImage {
            reference: format!("docker.io/library/debian@sha256:{}", sha256_hex(b"builder")),
            image_id: format!("sha256:{}", sha256_hex(b"image-id")),
            distro: "debian-11".into(),
        },
        inputs,
        system_packages: vec![
            deb("build-essential", "12.9"),
            deb("libyaml-dev", "0.2.5-1"),
        ],
        vendored_libs,
        native_files: vec![NativeFile {
            path: "bin/app-native".into(),
            sha256: native_sha,
        }],
        source_date_epoch: 1_700_000_000,
        source_tree_sha256: Some(sha256_hex(b"source tree")),
        recipe_sha256: sha256_hex(b"recipe"),
    };
    write(
        &top.join("share/hermetic/bundle.json"),
        &meta.to_canonical_json().unwrap(),
    );
    top
}

fn field(metadata: &str, key: &str) -> String {
    metadata
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .expect("field present")
        .to_owned()
}

fn read_meta(top: &Path) -> BundleMeta {
    serde_json::from_slice(&std::fs::read(top.join("share/hermetic/bundle.json")).expect("read"))
        .expect("parse")
}

fn write_meta(top: &Path, meta: &BundleMeta) {
    write(
        &top.join("share/hermetic/bundle.json"),
        &meta.to_canonical_json().unwrap(),
    );
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("SBOM is JSON")
}

/// Runs CycloneDX's own JSON-schema validation (cyclonedx-python-lib) on
/// `bytes`; Err(stderr) if invalid. None when the validator is missing
/// outside CI (after a loud message).
fn schema_validate(test: &str, bytes: &[u8]) -> Option<Result<(), String>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sbom.cdx.json");
    std::fs::write(&file, bytes).expect("write");
    match common::validate_cdx(test, &file) {
        Ok(true) => Some(Ok(())),
        Ok(false) => None,
        Err(errors) => Some(Err(errors)),
    }
}

fn assert_schema_valid(test: &str, bytes: &[u8]) {
    if let Some(Err(errors)) = schema_validate(test, bytes) {
        panic!(
            "{test}: SBOM fails CycloneDX {} schema validation:\n{errors}",
            SPEC_PIN.trim()
        );
    }
}

fn components(doc: &Value) -> &Vec<Value> {
    doc["components"].as_array().expect("components array")
}

fn find<'a>(doc: &'a Value, bom_ref: &str) -> &'a Value {
    components(doc)
        .iter()
        .find(|c| c["bom-ref"] == bom_ref)
        .unwrap_or_else(|| panic!("no component {bom_ref}"))
}

fn sha256_of(component: &Value) -> Option<&str> {
    component["hashes"]
        .as_array()?
        .iter()
        .find(|h| h["alg"] == "SHA-256")?["content"]
        .as_str()
}

fn depends_on(doc: &Value, bom_ref: &str) -> BTreeSet<String> {
    doc["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .find(|d| d["ref"] == bom_ref)
        .unwrap_or_else(|| panic!("no dependency entry for {bom_ref}"))["dependsOn"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().expect("ref").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn sbom_is_valid_cyclonedx_1_5() {
    let dir = tempfile::tempdir().expect("tempdir");
    let top = fixture_bundle(dir.path());
    let sbom = sbom::generate(&top).expect("generate");
    let result = sbom.bom().validate_version(sbom::SPEC_VERSION);
    assert!(result.passed(), "Bom::validate failed: {result:?}");
    assert_eq!(sbom::SPEC_VERSION.to_string(), SPEC_PIN.trim());
    let bytes = sbom.to_json_bytes();
    assert_eq!(json_of(&bytes)["specVersion"], SPEC_PIN.trim());
    assert_schema_valid("sbom_is_valid_cyclonedx_1_5", &bytes);
}

#[test]
fn schema_validator_rejects_an_invalid_document() {
    // The validation above is only worth something if it can fail.
    let dir = tempfile::tempdir().expect("tempdir");
    let top = fixture_bundle(dir.path());
    let mut doc = json_of(&sbom::generate(&top).expect("generate").to_json_bytes());
    doc["components"][0]["type"] = "not-a-type".into();
    let bytes = serde_json::to_vec(&doc).expect("json");
    if let Some(result) = schema_validate("schema_validator_rejects_an_invalid_document", &bytes) {
        let errors = result.expect_err("an unknown component type must not validate");
        assert!(errors.contains("not-a-type"), "{errors}");
    }
}

#[test]
fn sbom_lists_every_distribution_and_vendored_library() {
    let dir = tempfile::tempdir().expect("tempdir");
    let top = fixture_bundle(dir.path());
    let doc = json_of(&sbom::generate(&top).expect("generate").to_json_bytes());
    let meta = read_meta(&top);

    // Every dist-info in site-packages, found independently of the SBOM code.
    let mut dists = 0;
    for entry in std::fs::read_dir(top.join(SITE)).expect("site-packages") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let Some(stem) = name.strip_suffix(".dist-info") else {
            continue;
        };
        dists += 1;
        let (project, version) = stem.split_once('-').expect("name-version");
        let project = project.to_lowercase().replace(['_', '.'], "-");
        let purl = format!("pkg:pypi/{project}@{version}");
        let component = find(&doc, &purl);
        assert_eq!(component["purl"], purl.as_str());
        let input = meta
            .inputs
            .iter()
            .find(|i| i.project == project && i.version == version)
            .expect("input for dist");
        assert_eq!(sha256_of(component), Some(input.sha256.as_str()), "{purl}");
        let path_prop = component["properties"]
            .as_array()
            .expect("properties")
            .iter()
            .find(|p| p["name"] == "hermetic:bundle:path")
            .expect("path property");
        assert_eq!(path_prop["value"], format!("{SITE}/{name}").as_str());
    }
    assert_eq!(dists, DISTS.len());

    // Every file in lib/, with the sha256 of its bytes.
    let mut libs = 0;
    for entry in std::fs::read_dir(top.join("lib")).expect("lib") {
        let entry = entry.expect("entry");
        let rel = format!("lib/{}", entry.file_name().to_string_lossy());
        libs += 1;
        let component = find(&doc, &format!("file:{rel}"));
        let actual = sha256_hex(&std::fs::read(entry.path()).expect("read"));
        assert_eq!(sha256_of(component), Some(actual.as_str()), "{rel}");
        let recorded = meta
            .vendored_libs
            .iter()
            .find(|l| l.path == rel)
            .expect("recorded");
        match &recorded.package {
            Some(p) => {
                let purl = component["purl"].as_str().expect("purl");
                assert!(
                    purl.starts_with(&format!("pkg:deb/debian/{}@", p.name)),
                    "{purl}"
                );
                assert!(purl.ends_with("?arch=amd64&distro=debian-11"), "{purl}");
            }
            None => assert!(component.get("purl").is_none()),
        }
    }
    assert_eq!(libs, 3);
    // The epoch and '+' of a Debian version are percent-encoded in the purl.
    assert_eq!(
        find(&doc, "file:lib/libfoo-5e6f7a8b.so.1")["purl"],
        "pkg:deb/debian/libfoo1@1%3A2.0%2Bdfsg-3?arch=amd64&distro=debian-11"
    );
}

#[test]
fn sbom_metadata_runtime_and_build_time_components() {
    let dir = tempfile::tempdir().expect("tempdir");
    let top = fixture_bundle(dir.path());
    let doc = json_of(&sbom::generate(&top).expect("generate").to_json_bytes());

    let metadata = &doc["metadata"];
    assert_eq!(metadata["timestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(
        metadata["lifecycles"],
        serde_json::json!([{ "phase": "build" }])
    );
    assert_eq!(metadata["component"]["purl"], "pkg:generic/demo-app@1.2.3");
    let tool = &metadata["tools"]["components"][0];
    assert_eq!(tool["name"], "hermetic");
    assert_eq!(tool["version"], env!("CARGO_PKG_VERSION"));
    let serial = doc["serialNumber"].as_str().expect("serial");
    let uuid = serial.strip_prefix("urn:uuid:").expect("urn:uuid");
    assert_eq!(uuid.as_bytes()[14], b'5', "UUIDv5: {serial}");

    // Components sorted by bom-ref.
    let refs: Vec<&str> = components(&doc)
        .iter()
        .map(|c| c["bom-ref"].as_str().expect("bom-ref"))
        .collect();
    let mut sorted = refs.clone();
    sorted.sort();
    assert_eq!(refs, sorted);

    let cpython = components(&doc)
        .iter()
        .find(|c| c["name"] == "cpython")
        .expect("cpython");
    assert_eq!(cpython["version"], "3.11.9");
    let source = &cpython["externalReferences"][0];
    assert_eq!(source["type"], "distribution");
    assert_eq!(
        source["hashes"][0]["content"],
        sha256_hex(b"Python-3.11.9.tar.xz").as_str()
    );

    let native = find(&doc, "file:bin/app-native");
    assert_eq!(
        native["type"], "application",
        "an ELF program with an interpreter"
    );
    assert!(sha256_of(native).is_some());

    let image = components(&doc)
        .iter()
        .find(|c| c["type"] == "container")
        .expect("builder image");
    assert_eq!(image["scope"], "excluded");
    assert_eq!(sha256_of(image), Some(sha256_hex(b"builder").as_str()));
    for package in ["build-essential", "libyaml-dev"] {
        let c = components(&doc)
            .iter()
            .find(|c| c["name"] == package)
            .expect("system package");
        assert_eq!(c["scope"], "excluded");
        assert!(
            c["properties"]
                .as_array()
                .expect("properties")
                .iter()
                .any(|p| p["name"] == "hermetic:scope" && p["value"] == "build")
        );
    }

    // Licences: expression, SPDX id via classifier, named, SPDX id field.
    let licences = |r: &str| find(&doc, r)["licenses"].clone();
    assert_eq!(
        licences("pkg:pypi/demo-app@1.2.3"),
        serde_json::json!([{ "expression": "MIT OR Apache-2.0" }])
    );
    assert_eq!(
        licences("pkg:pypi/requests@2.31.0"),
        serde_json::json!([{ "license": { "id": "Apache-2.0" } }])
    );
    assert_eq!(
        licences("pkg:pypi/idna@3.6"),
        serde_json::json!([{ "license": { "name": "BSD License" } }])
    );
    assert_eq!(
        licences("pkg:pypi/certifi@2023.11.17"),
        serde_json::json!([{ "license": { "id": "MPL-2.0" } }])
    );
}

#[test]
fn dependencies_follow_requires_dist_and_dt_needed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let top = fixture_bundle(dir.path());
    let doc = json_of(&sbom::generate(&top).expect("generate").to_json_bytes());
    let set = |refs: &[&str]| refs.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();

    // Extras and absent distributions (PySocks, typing-extensions) are dropped.
    assert_eq!(
        depends_on(&doc, "pkg:pypi/requests@2.31.0"),
        set(&[
            "pkg:pypi/certifi@2023.11.17",
            "pkg:pypi/charset-normalizer@3.3.2",
            "pkg:pypi/idna@3.6",
            "pkg:pypi/urllib3@2.1.0",
        ])
    );
    assert_eq!(
        depends_on(&doc, "pkg:pypi/demo-app@1.2.3"),
        set(&[
            "pkg:pypi/pyyaml@6.0.1",
            "pkg:pypi/requests@2.31.0",
            "pkg:pypi/zope-interface@6.1",
        ])
    );
    // DT_NEEDED: extension module → its distribution's edge; lib → lib;
    // native program → lib; runtime module → CPython's edge.
    assert_eq!(
        depends_on(&doc, "pkg:pypi/pyyaml@6.0.1"),
        set(&["file:lib/libyaml-0-1a2b3c4d.so.2"])
    );
    assert_eq!(
        depends_on(&doc, "file:lib/libfoo-5e6f7a8b.so.1"),
        set(&["file:lib/libyaml-0-1a2b3c4d.so.2"])
    );
    assert_eq!(
        depends_on(&doc, "file:bin/app-native"),
        set(&["file:lib/libfoo-5e6f7a8b.so.1"])
    );
    let cpython = components(&doc)
        .iter()
        .find(|c| c["name"] == "cpython")
        .and_then(|c| c["bom-ref"].as_str())
        .expect("cpython");
    assert_eq!(
        depends_on(&doc, cpython),
        set(&["file:lib/libbar-9c0d1e2f.so.0"])
    );
    // The bundle: CPython, its native file, the top distribution.
    assert_eq!(
        depends_on(&doc, "pkg:generic/demo-app@1.2.3"),
        set(&[cpython, "file:bin/app-native", "pkg:pypi/demo-app@1.2.3"])
    );
}

#[test]
fn two_generations_are_byte_identical_and_match_the_golden_sbom() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let first = sbom::generate(&fixture_bundle(a.path()))
        .expect("generate")
        .to_json_bytes();
    let second = sbom::generate(&fixture_bundle(b.path()))
        .expect("generate")
        .to_json_bytes();
    assert!(first == second, "two generations differ");

    if std::env::var("HERMETIC_BLESS").is_ok_and(|v| v == "1") {
        write(Path::new(GOLDEN), &first);
        eprintln!("blessed {GOLDEN}");
    }
    let golden = std::fs::read(GOLDEN).expect("golden SBOM (HERMETIC_BLESS=1 to create)");
    if golden != first {
        let actual = std::env::temp_dir().join("demo-app.cdx.json.actual");
        std::fs::write(&actual, &first).expect("write actual");
        panic!(
            "SBOM differs from {GOLDEN}; actual written to {} \
             (diff them; HERMETIC_BLESS=1 to accept)",
            actual.display()
        );
    }
    assert_schema_valid("golden", &golden);
}

fn tar_gz(top: &Path, out: &Path) {
    let file = std::fs::File::create(out).expect("create");
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    tar.append_dir_all(NAME, top).expect("append");
    tar.into_inner().expect("tar").finish().expect("gz");
}

#[test]
fn archive_and_directory_give_the_same_sbom() {
    let dir = tempfile::tempdir().expect("tempdir");
    let top = fixture_bundle(dir.path());
    let archive = dir
        .path()
        .join("demo-app-1.2.3-linux-x86_64-glibc2.31.tar.gz");
    tar_gz(&top, &archive);
    let from_dir = sbom::generate_for_path(&top).expect("dir");
    let from_archive = sbom::generate_for_path(&archive).expect("archive");
    assert!(
        from_dir == from_archive,
        "archive SBOM differs from directory SBOM"
    );
}

/// A .tar.gz whose single entry has a raw `name` (bypassing tar's own checks).
fn hostile_archive(out: &Path, name: &[u8], link: Option<&[u8]>) {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_mode(0o644);
    match link {
        Some(target) => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.as_old_mut().linkname[..target.len()].copy_from_slice(target);
            header.set_size(0);
        }
        None => header.set_size(4),
    }
    header.set_cksum();
    let file = std::fs::File::create(out).expect("create");
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::fast(),
    ));
    let data: &[u8] = if link.is_some() { b"" } else { b"evil" };
    tar.append(&header, data).expect("append");
    tar.into_inner().expect("tar").finish().expect("gz");
}

#[test]
fn unsafe_archives_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (case, name, link) in [
        ("dotdot", &b"demo-app/../../evil"[..], None),
        ("absolute", &b"/tmp/evil"[..], None),
        (
            "symlink",
            &b"demo-app/lib/x"[..],
            Some(&b"../../../etc/passwd"[..]),
        ),
        (
            "abs-symlink",
            &b"demo-app/lib/y"[..],
            Some(&b"/etc/passwd"[..]),
        ),
    ] {
        let archive = dir.path().join(format!("{case}.tar.gz"));
        hostile_archive(&archive, name, link);
        let err = sbom::generate_for_path(&archive).expect_err(case);
        assert!(
            matches!(err, SbomError::UnsafeArchiveEntry { .. }),
            "{case}: {err}"
        );
        assert!(
            err.to_string().contains(&archive.display().to_string()),
            "{err}"
        );
    }
}

#[test]
fn missing_bundle_json_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let top = fixture_bundle(dir.path());
    let meta = top.join("share/hermetic/bundle.json");
    std::fs::remove_file(&meta).expect("rm");
    let err = sbom::generate(&top).expect_err("no bundle.json");
    assert!(matches!(err, SbomError::MissingMeta { .. }), "{err}");
    assert!(
        err.to_string().contains(&meta.display().to_string()),
        "{err}"
    );

    std::fs::write(&meta, b"{\"format\": 1, \"name\": ").expect("write");
    let err = sbom::generate(&top).expect_err("truncated bundle.json");
    assert!(matches!(err, SbomError::MalformedMeta { .. }), "{err}");
    assert!(
        err.to_string().starts_with("malformed bundle metadata"),
        "{err}"
    );
    assert!(
        err.to_string().contains(&meta.display().to_string()),
        "{err}"
    );
}

#[test]
fn malformed_metadata_is_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let top = fixture_bundle(dir.path());
    let path = top.join(SITE).join("idna-3.6.dist-info/METADATA");
    std::fs::write(
        &path,
        "Metadata-Version: 2.1\nName: idna\nthis is not a header\n",
    )
    .expect("w");
    let err = sbom::generate(&top).expect_err("malformed METADATA");
    let text = err.to_string();
    assert!(
        matches!(err, SbomError::MalformedMetadata { line: 3, .. }),
        "{text}"
    );
    assert!(text.contains(&path.display().to_string()), "{text}");

    std::fs::write(&path, "Metadata-Version: 2.1\nName: idna\n").expect("w");
    let err = sbom::generate(&top).expect_err("no Version");
    assert!(
        err.to_string().contains("missing required field Version"),
        "{err}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_modified_vendored_library_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let top = fixture_bundle(dir.path());
    let lib = top.join("lib/libbar-9c0d1e2f.so.0");
    let mut bytes = std::fs::read(&lib).expect("read");
    bytes.push(0);
    std::fs::write(&lib, bytes).expect("write");
    let err = sbom::generate(&top).expect_err("hash mismatch");
    assert!(matches!(err, SbomError::HashMismatch { .. }), "{err}");
    assert!(
        err.to_string().contains(&lib.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_distribution_without_a_fetched_input_has_no_hash_and_stays_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let top = fixture_bundle(dir.path());
    let mut meta = read_meta(&top);
    meta.inputs.retain(|i| i.project != "idna");
    // A lib in lib/ that bundle.json does not know is still listed.
    copy_elf("libbar-9c0d1e2f.so.0", &top.join("lib/libextra.so.9"));
    write_meta(&top, &meta);
    let sbom = sbom::generate(&top).expect("generate");
    let doc = json_of(&sbom.to_json_bytes());
    assert_eq!(sha256_of(find(&doc, "pkg:pypi/idna@3.6")), None);
    assert!(sha256_of(find(&doc, "file:lib/libextra.so.9")).is_some());
    assert_schema_valid("no_input", &sbom.to_json_bytes());
}

//! CycloneDX 1.5 SBOM of a built bundle.
//!
//! Data flow: a bundle directory (or a `.tar.gz`/`.tar.zst` of one, unpacked to a
//! temporary directory) → `share/hermetic/bundle.json` ([`BundleMeta`]) plus
//! what the bundle itself contains (each `*.dist-info/METADATA` and `RECORD`
//! in site-packages, the files in `lib/`, `DT_NEEDED` of every ELF file) → a
//! [`cyclonedx_bom`] document → deterministic JSON bytes.
//!
//! Determinism: components and dependencies are sorted by bom-ref, the
//! timestamp is the bundle's `SOURCE_DATE_EPOCH`, and the serial number is a
//! UUIDv5 over the document's own bytes (rendered with no serial number), so
//! the same bundle always gives the same bytes. `sbom/README.md` describes
//! what each component means; `sbom/golden/` holds the SBOM of the test
//! fixture bundle.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use cyclonedx_bom::external_models::date_time::DateTime;
use cyclonedx_bom::external_models::normalized_string::NormalizedString;
use cyclonedx_bom::external_models::spdx::{SpdxExpression, SpdxIdentifier};
use cyclonedx_bom::external_models::uri::{Purl, Uri};
use cyclonedx_bom::models::bom::{Bom, SpecVersion, UrnUuid};
use cyclonedx_bom::models::component::{Classification, Component, Components, Cpe, Scope};
use cyclonedx_bom::models::dependency::{Dependencies, Dependency};
use cyclonedx_bom::models::external_reference::{
    ExternalReference, ExternalReferenceType, ExternalReferences,
};
use cyclonedx_bom::models::hash::{Hash, HashAlgorithm, HashValue, Hashes};
use cyclonedx_bom::models::license::{License, LicenseChoice, Licenses};
use cyclonedx_bom::models::lifecycle::{Lifecycle, Lifecycles, Phase};
use cyclonedx_bom::models::metadata::Metadata;
use cyclonedx_bom::models::property::{Properties, Property};
use cyclonedx_bom::models::tool::Tools;
use cyclonedx_bom::validation::Validate;

use crate::bundle::{self, BundleMeta, InputKind, OsPackage};
use crate::purl::{self, enc};

/// The CycloneDX version hermetic writes; pinned in `sbom/spec-version`
/// (a test checks that the two agree).
pub const SPEC_VERSION: SpecVersion = SpecVersion::V1_5;

/// Trove licence classifiers that name exactly one SPDX licence.
/// Source: <https://pypi.org/classifiers/> and <https://spdx.org/licenses/>.
const LICENSE_CLASSIFIERS: &str = include_str!("../sbom/pypi-license-classifiers.tsv");

/// Property names hermetic adds to components (the `hermetic:` namespace is ours).
mod prop {
    /// Where a component lives in the bundle, relative to its top directory.
    pub const PATH: &str = "hermetic:bundle:path";
    /// `build`: the component was used to build the bundle and is not in it.
    pub const SCOPE: &str = "hermetic:scope";
    /// The wheel or sdist a distribution was installed from.
    pub const INPUT_FILENAME: &str = "hermetic:input:filename";
    pub const INPUT_KIND: &str = "hermetic:input:kind";
    /// A vendored library's SONAME and location in the builder.
    pub const ORIGINAL_SONAME: &str = "hermetic:lib:original-soname";
    pub const SOURCE_PATH: &str = "hermetic:lib:source-path";
    pub const GLIBC: &str = "hermetic:glibc-baseline";
    pub const LAUNCHER: &str = "hermetic:launcher";
    pub const RECIPE_SHA256: &str = "hermetic:recipe:sha256";
    pub const SOURCE_TREE_SHA256: &str = "hermetic:source-tree:sha256";
    pub const IMAGE_REFERENCE: &str = "hermetic:image:reference";
    pub const IMAGE_ID: &str = "hermetic:image:id";
    pub const DISTRO: &str = "hermetic:distro";
}

/// Errors generating an SBOM. Each names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    /// The directory has no `share/hermetic/bundle.json`.
    #[error("no bundle metadata at {path}: not a hermetic bundle directory")]
    MissingMeta {
        /// Where the metadata was looked for.
        path: PathBuf,
    },
    /// The bundle metadata is not valid JSON of the expected shape.
    #[error("malformed bundle metadata {path}: {source}")]
    MalformedMeta {
        /// The metadata file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The bundle metadata has a format this hermetic does not read.
    #[error(
        "unsupported bundle metadata format {found} in {path} (this hermetic reads format {supported})"
    )]
    UnsupportedMetaFormat {
        /// The metadata file.
        path: PathBuf,
        /// The format it has.
        found: u32,
        /// The format this hermetic reads.
        supported: u32,
    },
    /// The recorded epoch is not a representable time.
    #[error("invalid SOURCE_DATE_EPOCH {epoch} in {path}")]
    InvalidEpoch {
        /// The metadata file.
        path: PathBuf,
        /// The epoch it records.
        epoch: u64,
    },
    /// A `METADATA` file of an installed distribution does not parse.
    #[error("malformed distribution metadata {path}, line {line}: {reason}")]
    MalformedMetadata {
        /// The file.
        path: PathBuf,
        /// The line, 1-based.
        line: usize,
        /// What is wrong there.
        reason: String,
    },
    /// A `RECORD` file of an installed distribution does not parse.
    #[error("malformed RECORD {path}, line {line}: {reason}")]
    MalformedRecord {
        /// The file.
        path: PathBuf,
        /// The line, 1-based.
        line: usize,
        /// What is wrong there.
        reason: String,
    },
    /// A file the bundle metadata lists is not in the bundle.
    #[error("{what} {path} is listed in bundle.json but missing from the bundle")]
    MissingFile {
        /// What kind of file (e.g. a vendored library).
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A file's content does not have the hash the bundle metadata records.
    #[error("file {path} has sha256 {actual} but bundle.json records {recorded}")]
    HashMismatch {
        /// The file.
        path: PathBuf,
        /// The hex SHA-256 recorded.
        recorded: String,
        /// The hex SHA-256 found.
        actual: String,
    },
    /// An ELF file of the bundle does not parse.
    #[error("cannot parse ELF file {path}: {reason}")]
    Elf {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        reason: String,
    },
    /// A bundle archive could not be read.
    #[error("cannot read archive {path}: {source}")]
    Archive {
        /// The archive.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A bundle archive has an entry the unpack refuses (absolute, `..`, a link leaving it, a device).
    #[error("unsafe entry {entry:?} in archive {path}: {reason}")]
    UnsafeArchiveEntry {
        /// The archive.
        path: PathBuf,
        /// The entry's path.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// The path is not a bundle: not a bundle directory or archive, or not exactly one top directory with the metadata.
    #[error("{path} is not a hermetic bundle: {reason}")]
    NotABundle {
        /// The path given.
        path: PathBuf,
        /// What it lacks.
        reason: String,
    },
    /// A bug in hermetic: the document it built does not validate.
    #[error("the SBOM generated for {path} is not valid CycloneDX {version}: {details}")]
    Invalid {
        /// The bundle the SBOM is for.
        path: PathBuf,
        /// The CycloneDX spec version checked against.
        version: String,
        /// The validation errors.
        details: String,
    },
    /// The SBOM could not be rendered as JSON.
    #[error("cannot serialise the SBOM for {path}: {reason}")]
    Serialize {
        /// The bundle the SBOM is for.
        path: PathBuf,
        /// The serialiser's error.
        reason: String,
    },
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A validated SBOM and its JSON rendering.
///
/// Only [`generate`] makes one, after `Bom::validate()` passed and the JSON
/// was rendered, so [`Sbom::to_json_bytes`] cannot fail.
#[derive(Debug, Clone)]
pub struct Sbom {
    bom: Bom,
    json: Vec<u8>,
}

impl Sbom {
    /// The document model.
    pub fn bom(&self) -> &Bom {
        &self.bom
    }

    /// The CycloneDX JSON: pretty-printed, trailing newline, byte-identical
    /// for the same bundle.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        self.json.clone()
    }
}

/// Deterministic CycloneDX 1.5 JSON of `sbom` (same as [`Sbom::to_json_bytes`]).
pub fn to_json_bytes(sbom: &Sbom) -> Vec<u8> {
    sbom.to_json_bytes()
}

/// Builds the SBOM of the bundle whose top directory is `bundle_dir` (the
/// directory holding `share/hermetic/bundle.json`).
pub fn generate(bundle_dir: &Path) -> Result<Sbom, SbomError> {
    let meta = read_meta(bundle_dir)?;
    let components = collect(bundle_dir, &meta)?;
    let bom = assemble(bundle_dir, &meta, components)?;
    finish(bundle_dir, bom)
}

/// The SBOM JSON of a bundle directory or of a bundle archive
/// (backs `hermetic sbom <dir|archive>`).
pub fn generate_for_path(path: &Path) -> Result<Vec<u8>, SbomError> {
    if path.is_dir() {
        return Ok(generate(path)?.to_json_bytes());
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    if crate::archive::archive_stem(&name).is_none() {
        return Err(SbomError::NotABundle {
            path: path.to_owned(),
            reason: "expected a bundle directory or a .tar.gz/.tar.zst archive".into(),
        });
    }
    let temp = tempfile::tempdir()?;
    unpack_archive(path, temp.path())?;
    let top = find_bundle_top(path, temp.path())?;
    Ok(generate(&top)?.to_json_bytes())
}

// ---------------------------------------------------------------------------
// bundle.json

fn read_meta(bundle_dir: &Path) -> Result<BundleMeta, SbomError> {
    let path = bundle_dir.join(bundle::META_PATH);
    if !path.is_file() {
        return Err(SbomError::MissingMeta { path });
    }
    let bytes = fs_err::read(&path)?;
    let meta: BundleMeta =
        serde_json::from_slice(&bytes).map_err(|source| SbomError::MalformedMeta {
            path: path.clone(),
            source,
        })?;
    if meta.format != BundleMeta::FORMAT {
        return Err(SbomError::UnsupportedMetaFormat {
            path,
            found: meta.format,
            supported: BundleMeta::FORMAT,
        });
    }
    Ok(meta)
}

// ---------------------------------------------------------------------------
// Collecting components

/// Everything found in the bundle, before it becomes a document.
struct Collected {
    /// The bundle's own bom-ref (its purl).
    bundle_ref: String,
    cpython_ref: String,
    /// Components in the bundle (runtime), keyed by bom-ref.
    runtime: BTreeMap<String, Component>,
    /// Build-time components (builder image, system packages), keyed by bom-ref.
    build: BTreeMap<String, Component>,
    /// Native files built by the recipe: their bom-refs.
    native_refs: Vec<String>,
    /// Python distributions: bom-ref → bom-refs of the distributions it requires.
    requires: BTreeMap<String, BTreeSet<String>>,
    /// ELF links: bom-ref of the owner → bom-refs of vendored libraries.
    links: BTreeMap<String, BTreeSet<String>>,
}

fn collect(bundle_dir: &Path, meta: &BundleMeta) -> Result<Collected, SbomError> {
    let bundle_ref = bundle_purl(meta);
    let mut runtime = BTreeMap::new();

    let cpython = cpython_component(meta);
    let cpython_ref = bom_ref(&cpython);
    runtime.insert(cpython_ref.clone(), cpython);

    // Python distributions, and which bundle files each one installed.
    let dists = read_distributions(bundle_dir, meta)?;
    let by_name: BTreeMap<&str, String> = dists
        .iter()
        .map(|d| (d.normalized.as_str(), d.purl.clone()))
        .collect();
    let mut requires = BTreeMap::new();
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    for dist in &dists {
        let deps: BTreeSet<String> = dist
            .requires
            .iter()
            .filter_map(|name| by_name.get(name.as_str()).cloned())
            .filter(|r| *r != dist.purl)
            .collect();
        requires.insert(dist.purl.clone(), deps);
        for file in &dist.files {
            owners.insert(file.clone(), dist.purl.clone());
        }
        runtime.insert(dist.purl.clone(), distribution_component(dist, meta));
    }

    // Vendored libraries: what bundle.json records, then anything else in lib/.
    let mut soname_to_ref: BTreeMap<String, String> = BTreeMap::new();
    for lib in &meta.vendored_libs {
        let sha = checked_sha256(bundle_dir, &lib.path, &lib.sha256, "vendored library")?;
        let component = vendored_lib_component(meta, lib, &sha);
        let r = bom_ref(&component);
        // DT_NEEDED of patched files names the new file name; unpatched ones
        // (there should be none) would name the original SONAME.
        soname_to_ref
            .entry(lib.original_soname.clone())
            .or_insert_with(|| r.clone());
        soname_to_ref.insert(file_name(&lib.path).to_owned(), r.clone());
        owners.insert(lib.path.clone(), r.clone());
        runtime.insert(r, component);
    }
    for rel in unrecorded_libs(bundle_dir, meta)? {
        let sha = sha256_of_file(&bundle_dir.join(&rel))?;
        let mut component = Component::new(
            Classification::Library,
            file_name(&rel),
            "",
            Some(file_ref(&rel)),
        );
        component.version = None;
        component.hashes = Some(sha256_hashes(&sha));
        component.properties = Some(properties(&[(prop::PATH, &rel)]));
        soname_to_ref.insert(file_name(&rel).to_owned(), file_ref(&rel));
        owners.insert(rel.clone(), file_ref(&rel));
        runtime.insert(file_ref(&rel), component);
    }

    // The recipe's native files.
    let mut native_refs = Vec::new();
    for native in &meta.native_files {
        let sha = checked_sha256(bundle_dir, &native.path, &native.sha256, "native file")?;
        let full = bundle_dir.join(&native.path);
        let is_program = read_elf(&full)?.is_some_and(|elf| elf.has_interpreter);
        let class = if is_program {
            Classification::Application
        } else {
            Classification::File
        };
        let r = file_ref(&native.path);
        let mut component = Component::new(class, file_name(&native.path), "", Some(r.clone()));
        component.version = None;
        component.hashes = Some(sha256_hashes(&sha));
        component.properties = Some(properties(&[(prop::PATH, &native.path)]));
        owners.insert(native.path.clone(), r.clone());
        native_refs.push(r.clone());
        runtime.insert(r, component);
    }

    // DT_NEEDED of every ELF file in the bundle, attributed to its owner.
    let links = elf_links(
        bundle_dir,
        meta,
        &owners,
        &soname_to_ref,
        &bundle_ref,
        &cpython_ref,
    )?;

    let mut build = BTreeMap::new();
    let image = builder_component(meta);
    build.insert(bom_ref(&image), image);
    for package in &meta.system_packages {
        let component = system_package_component(meta, package);
        build.insert(bom_ref(&component), component);
    }

    Ok(Collected {
        bundle_ref,
        cpython_ref,
        runtime,
        build,
        native_refs,
        requires,
        links,
    })
}

fn bom_ref(component: &Component) -> String {
    component.bom_ref.clone().unwrap_or_default()
}

fn file_ref(rel: &str) -> String {
    format!("file:{rel}")
}

fn file_name(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

/// Hashes a file bundle.json lists and checks it against the recorded hash:
/// an SBOM must describe the bytes that are really in the bundle.
fn checked_sha256(
    bundle_dir: &Path,
    rel: &str,
    recorded: &str,
    what: &'static str,
) -> Result<String, SbomError> {
    let path = bundle_dir.join(rel);
    if !path.is_file() {
        return Err(SbomError::MissingFile { what, path });
    }
    let actual = sha256_of_file(&path)?;
    if !actual.eq_ignore_ascii_case(recorded) {
        return Err(SbomError::HashMismatch {
            path,
            recorded: recorded.to_owned(),
            actual,
        });
    }
    Ok(actual)
}

/// Regular files in `lib/` that bundle.json does not list (symlinks are
/// aliases of listed files and are skipped).
fn unrecorded_libs(bundle_dir: &Path, meta: &BundleMeta) -> Result<Vec<String>, SbomError> {
    let dir = bundle_dir.join(bundle::LIB_DIR);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let known: BTreeSet<&str> = meta.vendored_libs.iter().map(|l| l.path.as_str()).collect();
    let mut out = Vec::new();
    for entry in fs_err::read_dir(&dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let rel = format!(
            "{}/{}",
            bundle::LIB_DIR,
            entry.file_name().to_string_lossy()
        );
        if !known.contains(rel.as_str()) {
            out.push(rel);
        }
    }
    out.sort();
    Ok(out)
}

// ---------------------------------------------------------------------------
// Components from bundle.json

fn bundle_purl(meta: &BundleMeta) -> String {
    format!("pkg:generic/{}@{}", enc(&meta.name), enc(&meta.version))
}

fn bundle_component(meta: &BundleMeta) -> Component {
    let purl = bundle_purl(meta);
    let mut component = Component::new(
        Classification::Application,
        &meta.name,
        &meta.version,
        Some(purl.clone()),
    );
    component.purl = purl_of(&purl);
    let glibc = meta.glibc.to_string();
    let mut props = vec![(prop::GLIBC, glibc.as_str())];
    props.extend(meta.launchers.iter().map(|l| (prop::LAUNCHER, l.as_str())));
    props.push((prop::RECIPE_SHA256, &meta.recipe_sha256));
    if let Some(tree) = &meta.source_tree_sha256 {
        props.push((prop::SOURCE_TREE_SHA256, tree));
    }
    component.properties = Some(properties(&props));
    component
}

fn cpython_component(meta: &BundleMeta) -> Component {
    let py = &meta.python;
    // The bom-ref stays short; the purl also carries where the source came from.
    let bom_ref = format!("pkg:generic/cpython@{}", enc(&py.version));
    let mut purl = bom_ref.clone();
    let mut qualifiers = Vec::new();
    if let Some(sha) = &py.source_sha256 {
        qualifiers.push(format!("checksum=sha256:{}", enc(sha)));
    }
    if let Some(url) = &py.source_url {
        qualifiers.push(format!("download_url={}", enc(url)));
    }
    if !qualifiers.is_empty() {
        purl = format!("{purl}?{}", qualifiers.join("&"));
    }
    let mut component = Component::new(
        Classification::Framework,
        "cpython",
        &py.version,
        Some(bom_ref),
    );
    component.purl = purl_of(&purl);
    component.description = Some(NormalizedString::new("CPython runtime"));
    // Vulnerability databases (NVD) know CPython by this CPE.
    if py
        .version
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.')
    {
        component.cpe = Some(Cpe::new(&format!(
            "cpe:2.3:a:python:python:{}:*:*:*:*:*:*:*",
            py.version
        )));
    }
    component.licenses = Some(Licenses(vec![LicenseChoice::License(License::license_id(
        "PSF-2.0",
    ))]));
    // The runtime is many files, so the source tarball's hash goes on the
    // reference to that tarball rather than on the component.
    if let Some(url) = &py.source_url {
        let mut reference =
            ExternalReference::new(ExternalReferenceType::Distribution, Uri::new(url));
        reference.comment = Some("CPython source tarball the runtime was built from".into());
        reference.hashes = py.source_sha256.as_deref().map(sha256_hashes);
        component.external_references = Some(ExternalReferences(vec![reference]));
    }
    component.properties = Some(properties(&[(prop::PATH, &py.path)]));
    component
}

fn os_package_purl(meta: &BundleMeta, package: &OsPackage) -> String {
    purl::os_package(package, &meta.builder.distro)
}

fn vendored_lib_component(meta: &BundleMeta, lib: &bundle::VendoredLib, sha: &str) -> Component {
    let version = lib.package.as_ref().map(|p| p.version.as_str());
    let mut component = Component::new(
        Classification::Library,
        &lib.original_soname,
        version.unwrap_or(""),
        Some(file_ref(&lib.path)),
    );
    if version.is_none() {
        component.version = None;
    }
    if let Some(package) = &lib.package {
        component.purl = purl_of(&os_package_purl(meta, package));
    }
    component.hashes = Some(sha256_hashes(sha));
    component.properties = Some(properties(&[
        (prop::PATH, &lib.path),
        (prop::ORIGINAL_SONAME, &lib.original_soname),
        (prop::SOURCE_PATH, &lib.source_path),
    ]));
    component
}

fn builder_component(meta: &BundleMeta) -> Component {
    let builder = &meta.builder;
    let image = purl::oci_image(&builder.reference, &builder.image_id);
    let (repository, digest, purl) = (image.repository, image.digest, image.purl);
    let mut component = Component::new(
        Classification::Container,
        repository,
        digest,
        Some(purl.clone()),
    );
    component.purl = purl_of(&purl);
    component.scope = Some(Scope::Excluded);
    component.description = Some(NormalizedString::new(
        "builder image the bundle was built in (build time only)",
    ));
    if let Some(hex) = digest.strip_prefix("sha256:") {
        component.hashes = Some(sha256_hashes(hex));
    }
    component.properties = Some(properties(&[
        (prop::SCOPE, "build"),
        (prop::IMAGE_REFERENCE, &builder.reference),
        (prop::IMAGE_ID, &builder.image_id),
        (prop::DISTRO, &builder.distro),
    ]));
    component
}

fn system_package_component(meta: &BundleMeta, package: &OsPackage) -> Component {
    let purl = os_package_purl(meta, package);
    let mut component = Component::new(
        Classification::Library,
        &package.name,
        &package.version,
        Some(purl.clone()),
    );
    component.purl = purl_of(&purl);
    component.scope = Some(Scope::Excluded);
    component.properties = Some(properties(&[(prop::SCOPE, "build")]));
    component
}

// ---------------------------------------------------------------------------
// Python distributions

/// One `*.dist-info` directory in site-packages.
struct Distribution {
    /// PEP 503 normalised name.
    normalized: String,
    /// Name as written in METADATA.
    name: String,
    version: String,
    summary: Option<String>,
    licenses: Option<Licenses>,
    /// Normalised names of the distributions it requires (extras dropped).
    requires: Vec<String>,
    /// The dist-info directory, relative to the bundle top.
    dist_info: String,
    /// Files listed in RECORD that are inside the bundle, relative to its top.
    files: Vec<String>,
    purl: String,
}

fn read_distributions(
    bundle_dir: &Path,
    meta: &BundleMeta,
) -> Result<Vec<Distribution>, SbomError> {
    let mut out = Vec::new();
    for site_packages in site_packages_dirs(bundle_dir, meta)? {
        let mut dist_infos = Vec::new();
        for entry in fs_err::read_dir(bundle_dir.join(&site_packages))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".dist-info") && entry.file_type()?.is_dir() {
                dist_infos.push(name);
            }
        }
        dist_infos.sort();
        for dir in dist_infos {
            out.push(read_distribution(bundle_dir, &site_packages, &dir)?);
        }
    }
    Ok(out)
}

/// `<runtime>/lib/python3.*/site-packages`, relative to the bundle top.
fn site_packages_dirs(bundle_dir: &Path, meta: &BundleMeta) -> Result<Vec<String>, SbomError> {
    let runtime = if meta.python.path.is_empty() {
        bundle::RUNTIME_DIR
    } else {
        meta.python.path.trim_end_matches('/')
    };
    let lib = bundle_dir.join(runtime).join("lib");
    if !lib.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in fs_err::read_dir(&lib)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let rel = format!("{runtime}/lib/{name}/site-packages");
        if name.starts_with("python3.") && bundle_dir.join(&rel).is_dir() {
            out.push(rel);
        }
    }
    out.sort();
    Ok(out)
}

fn read_distribution(
    bundle_dir: &Path,
    site_packages: &str,
    dir: &str,
) -> Result<Distribution, SbomError> {
    let dist_info = format!("{site_packages}/{dir}");
    let metadata_path = bundle_dir.join(&dist_info).join("METADATA");
    let bytes = fs_err::read(&metadata_path)?;
    let text = String::from_utf8(bytes).map_err(|e| SbomError::MalformedMetadata {
        path: metadata_path.clone(),
        line: 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count(),
        reason: "not UTF-8".into(),
    })?;
    let core = CoreMetadata::parse(&metadata_path, &text)?;

    let record_path = bundle_dir.join(&dist_info).join("RECORD");
    let files = if record_path.is_file() {
        let text = String::from_utf8_lossy(&fs_err::read(&record_path)?).into_owned();
        record_files(&record_path, &text, site_packages)?
    } else {
        Vec::new()
    };

    let normalized = normalize_project(&core.name);
    let requires = core
        .requires_dist
        .iter()
        .filter_map(|r| requirement_name(r))
        .collect();
    let purl = purl::pypi(&normalized, &core.version);
    Ok(Distribution {
        licenses: licenses_of(&core),
        normalized,
        name: core.name,
        version: core.version,
        summary: core.summary,
        requires,
        dist_info,
        files,
        purl,
    })
}

fn distribution_component(dist: &Distribution, meta: &BundleMeta) -> Component {
    let mut component = Component::new(
        Classification::Library,
        &dist.name,
        &dist.version,
        Some(dist.purl.clone()),
    );
    component.purl = purl_of(&dist.purl);
    component.description = dist.summary.as_deref().map(NormalizedString::new);
    component.licenses = dist.licenses.clone();
    let mut props = vec![(prop::PATH, dist.dist_info.clone())];
    // The wheel (preferred) or sdist it was installed from.
    let mut inputs: Vec<_> = meta
        .inputs
        .iter()
        .filter(|i| normalize_project(&i.project) == dist.normalized && i.version == dist.version)
        .collect();
    inputs.sort_by_key(|i| (i.kind != InputKind::Wheel, i.filename.clone()));
    if let Some(input) = inputs.first() {
        component.hashes = Some(sha256_hashes(&input.sha256));
        props.push((prop::INPUT_FILENAME, input.filename.clone()));
        let kind = match input.kind {
            InputKind::Wheel => "wheel",
            InputKind::Sdist => "sdist",
        };
        props.push((prop::INPUT_KIND, kind.to_owned()));
    }
    let props: Vec<(&str, &str)> = props.iter().map(|(k, v)| (*k, v.as_str())).collect();
    component.properties = Some(properties(&props));
    component
}

/// The core metadata fields the SBOM uses (PEP 566 / 639 `METADATA`).
#[derive(Debug, Default)]
struct CoreMetadata {
    name: String,
    version: String,
    summary: Option<String>,
    license: Option<String>,
    license_expression: Option<String>,
    classifiers: Vec<String>,
    requires_dist: Vec<String>,
}

impl CoreMetadata {
    /// Parses the header block (RFC 822 style, up to the first empty line;
    /// the body is the long description and is ignored).
    fn parse(path: &Path, text: &str) -> Result<CoreMetadata, SbomError> {
        let err = |line: usize, reason: String| SbomError::MalformedMetadata {
            path: path.to_owned(),
            line,
            reason,
        };
        let mut fields: Vec<(String, String)> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            if line.trim().is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                let Some((_, value)) = fields.last_mut() else {
                    return Err(err(number, "continuation line before any header".into()));
                };
                value.push('\n');
                value.push_str(line.trim());
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err(err(
                    number,
                    format!("expected `Key: value`, found {line:?}"),
                ));
            };
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(err(number, format!("invalid header name {key:?}")));
            }
            fields.push((key.to_ascii_lowercase(), value.trim().to_owned()));
        }
        let mut core = CoreMetadata::default();
        for (key, value) in fields {
            match key.as_str() {
                "name" => core.name = value,
                "version" => core.version = value,
                "summary" if !value.is_empty() => core.summary = Some(value),
                "license" if !value.is_empty() && value != "UNKNOWN" => core.license = Some(value),
                "license-expression" if !value.is_empty() => core.license_expression = Some(value),
                "classifier" => core.classifiers.push(value),
                "requires-dist" => core.requires_dist.push(value),
                _ => {}
            }
        }
        for (field, value) in [("Name", &core.name), ("Version", &core.version)] {
            if value.is_empty() {
                return Err(err(1, format!("missing required field {field}")));
            }
        }
        Ok(core)
    }
}

use crate::recipe::normalize_project_name as normalize_project;

/// The normalised project a `Requires-Dist` value names, or None when the
/// requirement only applies with an extra. Other markers (python_version,
/// sys_platform, …) are not evaluated: the required distribution being
/// present in the bundle is taken as evidence that the marker held.
fn requirement_name(requirement: &str) -> Option<String> {
    let (spec, marker) = match requirement.split_once(';') {
        Some((spec, marker)) => (spec, Some(marker)),
        None => (requirement, None),
    };
    if marker.is_some_and(|m| m.contains("extra")) {
        return None;
    }
    let name: String = spec
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    (!name.is_empty()).then(|| normalize_project(&name))
}

/// Licences from core metadata, most precise first: `License-Expression`
/// (PEP 639); a `License` field that is an SPDX id or expression; trove
/// classifiers mapped through `sbom/pypi-license-classifiers.tsv` (unmapped
/// ones become named licences); else the `License` field's first line as a
/// named licence.
fn licenses_of(core: &CoreMetadata) -> Option<Licenses> {
    if let Some(expression) = &core.license_expression {
        return Some(Licenses(vec![spdx_or_named(expression)]));
    }
    let license = core.license.as_deref().map(str::trim);
    if let Some(license) = license.filter(|l| !l.contains('\n')) {
        if SpdxIdentifier::try_from(license.to_owned()).is_ok() {
            return Some(Licenses(vec![LicenseChoice::License(License::license_id(
                license,
            ))]));
        }
        if SpdxExpression::try_from(license.to_owned()).is_ok() {
            return Some(Licenses(vec![LicenseChoice::expression(license)]));
        }
    }
    let mut seen = BTreeSet::new();
    let mut from_classifiers = Vec::new();
    for classifier in core
        .classifiers
        .iter()
        .filter(|c| c.starts_with("License ::"))
    {
        let choice = match classifier_spdx(classifier) {
            Some(id) => LicenseChoice::License(License::license_id(id)),
            None => LicenseChoice::license(classifier.rsplit(" :: ").next().unwrap_or(classifier)),
        };
        if seen.insert(format!("{choice:?}")) {
            from_classifiers.push(choice);
        }
    }
    if !from_classifiers.is_empty() {
        return Some(Licenses(from_classifiers));
    }
    let first_line = license?.lines().next()?.trim();
    (!first_line.is_empty()).then(|| Licenses(vec![LicenseChoice::license(first_line)]))
}

/// A single SPDX id as a licence id, a valid expression as an expression,
/// anything else as a named licence.
fn spdx_or_named(text: &str) -> LicenseChoice {
    if SpdxIdentifier::try_from(text.to_owned()).is_ok() {
        LicenseChoice::License(License::license_id(text))
    } else if SpdxExpression::try_from(text.to_owned()).is_ok() {
        LicenseChoice::expression(text)
    } else {
        LicenseChoice::license(text)
    }
}

fn classifier_spdx(classifier: &str) -> Option<&'static str> {
    LICENSE_CLASSIFIERS
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .find(|(c, _)| *c == classifier)
        .map(|(_, id)| id.trim())
}

/// Paths of a RECORD (CSV: path, hash, size) resolved against site-packages
/// and made relative to the bundle top; entries outside the bundle dropped.
fn record_files(path: &Path, text: &str, site_packages: &str) -> Result<Vec<String>, SbomError> {
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let file = first_csv_field(line).ok_or_else(|| SbomError::MalformedRecord {
            path: path.to_owned(),
            line: index + 1,
            reason: format!("unterminated quoted path in {line:?}"),
        })?;
        if let Some(rel) = join_inside(site_packages, &file) {
            out.push(rel);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn first_csv_field(line: &str) -> Option<String> {
    let Some(rest) = line.strip_prefix('"') else {
        return Some(line.split(',').next().unwrap_or_default().to_owned());
    };
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            if chars.peek() == Some(&'"') {
                chars.next();
                out.push('"');
            } else {
                return Some(out);
            }
        } else {
            out.push(c);
        }
    }
    None
}

/// `base/rel` with `.` and `..` resolved lexically; None if absolute or if
/// it leaves the bundle.
fn join_inside(base: &str, rel: &str) -> Option<String> {
    if rel.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

// ---------------------------------------------------------------------------
// ELF links

struct ElfFacts {
    needed: Vec<String>,
    has_interpreter: bool,
}

/// DT_NEEDED and PT_INTERP of `path`, or None if it is not an ELF file.
// A deliberately small reader: `crate::elf` owns ELF analysis; this only
// needs the two facts above.
fn read_elf(path: &Path) -> Result<Option<ElfFacts>, SbomError> {
    let mut magic = [0u8; 4];
    let mut file = fs_err::File::open(path)?;
    if file.read(&mut magic)? < 4 || magic != *b"\x7fELF" {
        return Ok(None);
    }
    let bytes = fs_err::read(path)?;
    let facts = crate::elf::reader::read_elf(path, &bytes)
        .map_err(|e| SbomError::Elf {
            path: path.to_owned(),
            reason: e.to_string(),
        })?
        .ok_or_else(|| SbomError::Elf {
            path: path.to_owned(),
            reason: "not an ELF file".into(),
        })?;
    Ok(Some(ElfFacts {
        has_interpreter: facts.is_interpreter_set(),
        needed: facts.needed,
    }))
}

/// Owner bom-ref → vendored-library bom-refs, from DT_NEEDED of every
/// regular ELF file in the bundle. A file belongs to the vendored library or
/// native file it is, else to the distribution whose RECORD lists it, else to
/// CPython if it is under the runtime, else to the bundle itself.
fn elf_links(
    bundle_dir: &Path,
    meta: &BundleMeta,
    owners: &BTreeMap<String, String>,
    soname_to_ref: &BTreeMap<String, String>,
    bundle_ref: &str,
    cpython_ref: &str,
) -> Result<BTreeMap<String, BTreeSet<String>>, SbomError> {
    let runtime_prefix = format!("{}/", meta.python.path.trim_end_matches('/'));
    let mut links: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in walkdir::WalkDir::new(bundle_dir).sort_by_file_name() {
        crate::cancel::check()?;
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(bundle_dir).to_owned();
            SbomError::Io(std::io::Error::other(format!("{}: {e}", path.display())))
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let Some(elf) = read_elf(entry.path())? else {
            continue;
        };
        let rel = entry
            .path()
            .strip_prefix(bundle_dir)
            .unwrap_or(entry.path())
            .to_string_lossy()
            .into_owned();
        let owner = match owners.get(&rel) {
            Some(owner) => owner.as_str(),
            None if rel.starts_with(&runtime_prefix) => cpython_ref,
            None => bundle_ref,
        };
        for needed in &elf.needed {
            if let Some(lib) = soname_to_ref.get(needed).filter(|lib| *lib != owner) {
                links
                    .entry(owner.to_owned())
                    .or_default()
                    .insert(lib.clone());
            }
        }
    }
    Ok(links)
}

// ---------------------------------------------------------------------------
// The document

fn assemble(bundle_dir: &Path, meta: &BundleMeta, c: Collected) -> Result<Bom, SbomError> {
    let meta_path = bundle_dir.join(bundle::META_PATH);
    let timestamp = i64::try_from(meta.source_date_epoch)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .and_then(|s| DateTime::try_from(s).ok())
        .ok_or_else(|| SbomError::InvalidEpoch {
            path: meta_path.clone(),
            epoch: meta.source_date_epoch,
        })?;

    let mut tool = Component::new(
        Classification::Application,
        "hermetic",
        env!("CARGO_PKG_VERSION"),
        None,
    );
    tool.description = Some(NormalizedString::new(
        "builds self-contained relocatable Python application bundles",
    ));

    let dependencies = dependency_graph(&c);

    let mut components: Vec<Component> = c.runtime.into_values().collect();
    components.extend(c.build.into_values());
    components.sort_by_key(bom_ref);

    Ok(Bom {
        version: 1,
        serial_number: None,
        metadata: Some(Metadata {
            timestamp: Some(timestamp),
            tools: Some(Tools::Object {
                services: None,
                components: Some(Components(vec![tool])),
            }),
            component: Some(bundle_component(meta)),
            lifecycles: Some(Lifecycles(vec![Lifecycle::Phase(Phase::Build)])),
            ..Metadata::default()
        }),
        components: Some(Components(components)),
        dependencies: Some(dependencies),
        spec_version: SPEC_VERSION,
        ..Bom::default()
    })
}

/// The graph: the bundle needs CPython, its native files and the
/// distributions no other distribution requires; distributions need what
/// their `Requires-Dist` names; ELF owners need the vendored libraries their
/// DT_NEEDED names. Anything in the bundle still unreachable from the bundle
/// (dependency cycles, libraries only `dlopen`ed) is attached to the bundle
/// directly. Build-time components stay out of the graph.
fn dependency_graph(c: &Collected) -> Dependencies {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in c.runtime.keys() {
        graph.insert(r.clone(), BTreeSet::new());
    }
    let required: BTreeSet<&String> = c.requires.values().flatten().collect();
    let mut roots: BTreeSet<String> = c
        .requires
        .keys()
        .filter(|d| !required.contains(d))
        .cloned()
        .collect();
    roots.insert(c.cpython_ref.clone());
    roots.extend(c.native_refs.iter().cloned());
    graph.insert(c.bundle_ref.clone(), roots);
    for (from, to) in c.requires.iter().chain(&c.links) {
        graph
            .entry(from.clone())
            .or_default()
            .extend(to.iter().cloned());
    }

    let mut reached = BTreeSet::new();
    let mut stack = vec![c.bundle_ref.clone()];
    while let Some(node) = stack.pop() {
        if reached.insert(node.clone()) {
            stack.extend(graph.get(&node).into_iter().flatten().cloned());
        }
    }
    let orphans: Vec<String> = c
        .runtime
        .keys()
        .filter(|r| !reached.contains(*r))
        .cloned()
        .collect();
    graph
        .entry(c.bundle_ref.clone())
        .or_default()
        .extend(orphans);

    Dependencies(
        graph
            .into_iter()
            .map(|(dependency_ref, deps)| Dependency {
                dependency_ref,
                dependencies: deps.into_iter().collect(),
            })
            .collect(),
    )
}

/// Validates, derives the serial number from the content, renders the JSON.
fn finish(bundle_dir: &Path, mut bom: Bom) -> Result<Sbom, SbomError> {
    let result = bom.validate_version(SPEC_VERSION);
    if !result.passed() {
        return Err(SbomError::Invalid {
            path: bundle_dir.to_owned(),
            version: SPEC_VERSION.to_string(),
            details: format!("{result:?}"),
        });
    }
    let unsigned = render(bundle_dir, &bom)?;
    let namespace = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, SERIAL_NAMESPACE.as_bytes());
    bom.serial_number = Some(UrnUuid::from(uuid::Uuid::new_v5(&namespace, &unsigned)));
    let json = render(bundle_dir, &bom)?;
    Ok(Sbom { bom, json })
}

/// Names the UUIDv5 namespace of serial numbers: serial = UUIDv5(namespace,
/// the document's JSON rendered without a serial number).
const SERIAL_NAMESPACE: &str = "urn:hermetic:sbom:serial";

fn render(bundle_dir: &Path, bom: &Bom) -> Result<Vec<u8>, SbomError> {
    let mut out = Vec::new();
    bom.clone()
        .output_as_json_v1_5(&mut out)
        .map_err(|e| SbomError::Serialize {
            path: bundle_dir.to_owned(),
            reason: e.to_string(),
        })?;
    out.push(b'\n');
    Ok(out)
}

// ---------------------------------------------------------------------------
// Small helpers

/// A file's SHA-256, streamed (a vendored library can be gigabytes).
fn sha256_of_file(path: &Path) -> std::io::Result<String> {
    match crate::archive::sha256_file(path) {
        Ok((hex, _)) => Ok(hex),
        Err(crate::archive::ArchiveError::Io(e)) => Err(e),
        Err(e) => Err(std::io::Error::other(e)),
    }
}

fn sha256_hashes(hex: &str) -> Hashes {
    Hashes(vec![Hash {
        alg: HashAlgorithm::SHA_256,
        content: HashValue(hex.to_ascii_lowercase()),
    }])
}

fn properties(pairs: &[(&str, &str)]) -> Properties {
    Properties(pairs.iter().map(|(k, v)| Property::new(k, v)).collect())
}

/// `Purl::from_str` accepts any string; the purl is checked by Bom::validate().
fn purl_of(s: &str) -> Option<Purl> {
    s.parse().ok()
}

// ---------------------------------------------------------------------------
// Archives

/// Unpacks a bundle archive with the archive module's hostile-tar rules
/// (no absolute paths, no `..`, no links leaving `dest`, no devices), read
/// to its end with its checksum checked.
fn unpack_archive(archive: &Path, dest: &Path) -> Result<(), SbomError> {
    let unpacked = crate::archive::unpack_limit()
        .and_then(|limit| crate::archive::unpack_archive(archive, dest, limit));
    unpacked.map_err(|e| match e {
        crate::archive::ArchiveError::UnsafeEntry { entry, reason } => {
            SbomError::UnsafeArchiveEntry {
                path: archive.to_owned(),
                entry,
                reason: reason.to_string(),
            }
        }
        // These name the archive themselves.
        e if e.is_corrupt() => SbomError::Io(std::io::Error::other(e)),
        other => SbomError::Archive {
            path: archive.to_owned(),
            source: std::io::Error::other(other),
        },
    })?;
    Ok(())
}

/// The one top-level directory of an unpacked archive that holds bundle.json.
fn find_bundle_top(archive: &Path, unpacked: &Path) -> Result<PathBuf, SbomError> {
    let mut tops = Vec::new();
    for entry in fs_err::read_dir(unpacked)? {
        let path = entry?.path();
        if path.join(bundle::META_PATH).is_file() {
            tops.push(path);
        }
    }
    match tops.len() {
        1 => Ok(tops.remove(0)),
        0 => Err(SbomError::NotABundle {
            path: archive.to_owned(),
            reason: format!("no top-level directory holds {}", bundle::META_PATH),
        }),
        n => Err(SbomError::NotABundle {
            path: archive.to_owned(),
            reason: format!("{n} top-level directories hold {}", bundle::META_PATH),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_project_names_like_pep_503() {
        assert_eq!(
            normalize_project("Charset_Normalizer"),
            "charset-normalizer"
        );
        assert_eq!(normalize_project("zope.interface"), "zope-interface");
        assert_eq!(normalize_project("a-_.b"), "a-b");
        assert_eq!(normalize_project("PyYAML"), "pyyaml");
    }

    #[test]
    fn requirement_names_drop_extras_and_keep_other_markers() {
        assert_eq!(requirement_name("idna (<4,>=2.5)").as_deref(), Some("idna"));
        assert_eq!(
            requirement_name("urllib3[socks]>=1.21").as_deref(),
            Some("urllib3")
        );
        assert_eq!(
            requirement_name("typing_extensions; python_version < \"3.8\"").as_deref(),
            Some("typing-extensions")
        );
        assert_eq!(requirement_name("PySocks!=1.5.7; extra == \"socks\""), None);
    }

    #[test]
    fn licences_prefer_expression_then_spdx_then_classifiers() {
        let core = CoreMetadata {
            license_expression: Some("MIT OR Apache-2.0".into()),
            license: Some("whatever".into()),
            ..CoreMetadata::default()
        };
        assert_eq!(
            licenses_of(&core),
            Some(Licenses(vec![LicenseChoice::expression(
                "MIT OR Apache-2.0"
            )]))
        );
        let core = CoreMetadata {
            license: Some("Copyright (c) someone\nlong text".into()),
            classifiers: vec!["License :: OSI Approved :: BSD License".into()],
            ..CoreMetadata::default()
        };
        assert_eq!(
            licenses_of(&core),
            Some(Licenses(vec![LicenseChoice::license("BSD License")]))
        );
        let core = CoreMetadata {
            classifiers: vec!["License :: OSI Approved :: MIT License".into()],
            ..CoreMetadata::default()
        };
        assert_eq!(
            licenses_of(&core),
            Some(Licenses(vec![LicenseChoice::License(License::license_id(
                "MIT"
            ))]))
        );
    }

    #[test]
    fn every_classifier_maps_to_a_known_spdx_id() {
        for line in LICENSE_CLASSIFIERS.lines().filter(|l| !l.starts_with('#')) {
            let (classifier, id) = line.split_once('\t').expect("tab-separated line");
            assert!(classifier.starts_with("License :: "), "{line}");
            assert!(SpdxIdentifier::try_from(id.to_owned()).is_ok(), "{line}");
        }
    }

    #[test]
    fn record_paths_stay_inside_the_bundle() {
        let text = "yaml/__init__.py,sha256=x,1\n\"we,ird.py\",,\n../../../bin/tool,,\n../../../../../escape,,\n/abs,,\n";
        let files = record_files(Path::new("RECORD"), text, "py/lib/python3.11/site-packages")
            .expect("parses");
        assert_eq!(
            files,
            [
                "py/bin/tool",
                "py/lib/python3.11/site-packages/we,ird.py",
                "py/lib/python3.11/site-packages/yaml/__init__.py",
            ]
        );
        assert!(record_files(Path::new("RECORD"), "\"open,,\n", "sp").is_err());
    }
}

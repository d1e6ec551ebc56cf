//! Fetch phase (network on): system packages installed into a derived
//! builder image, and wheels/sdists downloaded with hash checks into the
//! host's content-addressed cache.
//!
//! Downloads go through the builder's own pip (so it picks the wheels that
//! fit the builder's Python and glibc), in a container that gets the host's
//! CA bundle. Every file that comes out is hashed again on the host and must
//! match a hash its requirement accepts; only then does it enter the cache
//! (`<home>/blobs/sha256/<hex>`, with its file name beside it). A build whose
//! inputs are all cached does not touch the network at all.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::{info, instrument};

use super::{BuildContext, BuildError, step_failed};
use crate::bundle::{FetchedInput, InputKind, OsPackage};
use crate::catalog::PackageFamily;
use crate::engine::{CA_ENV, ContainerSpec, Engine, ExecSpec, Network};
use crate::plan::{PinnedRequirement, ReplayError, TargetPlan};
use crate::{archive, paths};

/// Where the fetch container works.
const FETCH_DIR: &str = "/tmp/hermetic-fetch";

/// The label every derived builder image carries (`hermetic gc --images`
/// finds them by it); `io.hermetic.packages` beside it lists what it added.
pub const DERIVED_IMAGE_LABEL: (&str, &str) = ("io.hermetic.role", "derived-builder");

/// The builder to run the offline phase in, with the system packages added.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DerivedImage {
    /// Image ID (`sha256:…`).
    pub image_id: String,
    /// The tag it was made under; `None` when the builder is used as is.
    pub tag: Option<String>,
    /// Packages installed on top of the builder (requested and pulled in).
    pub packages: Vec<OsPackage>,
}

/// Installs the recipe's system packages into an image derived from the
/// builder, cached by (builder image, package list).
#[instrument(skip_all, fields(builder = %builder_id))]
pub async fn derive_image(
    ctx: &BuildContext<'_>,
    builder_id: &str,
    family: PackageFamily,
    packages: &[String],
) -> Result<DerivedImage, BuildError> {
    if packages.is_empty() {
        return Ok(DerivedImage {
            image_id: builder_id.to_string(),
            tag: None,
            packages: vec![],
        });
    }
    let engine = ctx.engine;
    let (sorted, tag) = derived_tag(engine, builder_id, packages);
    if let Some(cached) = cached_derived(engine, &tag).await? {
        info!("system packages cached in {tag}");
        return Ok(cached);
    }
    let spec = ContainerSpec {
        image: builder_id.to_string(),
        build_id: ctx.build_id.clone(),
        role: "fetch-packages".into(),
        network: Network::Default,
        hardened: false,
        env: vec!["DEBIAN_FRONTEND=noninteractive".into()],
        user: Some("0:0".into()),
    };
    let container = engine.create_container(&spec).await?;
    let result = async {
        let before = list_packages(&container, family).await?;
        let pkgs = crate::shell::join(&sorted);
        // The family the resolver found decides the tool, so a recipe's
        // Debian names never reach dnf, nor RPM names apt.
        let script = match family {
            PackageFamily::Deb => format!(
                "set -e\napt-get update -qq && apt-get install -y -qq --no-install-recommends {pkgs} \
                 && rm -rf /var/lib/apt/lists/*"
            ),
            PackageFamily::Rpm => format!(
                "set -e\nif command -v dnf >/dev/null; then dnf install -y {pkgs} && dnf clean all; \
                 else yum install -y {pkgs} && yum clean all; fi"
            ),
        };
        let out = container.exec(&ExecSpec::shell(script)).await?;
        if out.exit_code != 0 {
            return Err(step_failed("install system packages", &out, container.log_path()));
        }
        let after = list_packages(&container, family).await?;
        let added: Vec<OsPackage> = after.into_iter().filter(|p| !before.contains(p)).collect();
        let labels = HashMap::from([
            ("io.hermetic.packages".to_string(), serde_json::to_string(&added).unwrap_or_default()),
            (DERIVED_IMAGE_LABEL.0.to_string(), DERIVED_IMAGE_LABEL.1.to_string()),
        ]);
        let image_id = container.commit(&tag, labels).await?;
        Ok(DerivedImage { image_id, tag: Some(tag.clone()), packages: added })
    }
    .await;
    container.remove().await;
    result
}

/// The sorted, deduplicated package list and the tag of the derived image
/// it makes from `builder_id`.
fn derived_tag(engine: &Engine, builder_id: &str, packages: &[String]) -> (Vec<String>, String) {
    let mut sorted = packages.to_vec();
    sorted.sort();
    sorted.dedup();
    let key =
        crate::archive::sha256_bytes(format!("{builder_id}\n{}", sorted.join("\n")).as_bytes());
    let tag = engine
        .kind()
        .local_image_name(&format!("hermetic/derived:{}", &key[..16]));
    (sorted, tag)
}

/// A derived image made earlier, with the packages its label records.
async fn cached_derived(engine: &Engine, tag: &str) -> Result<Option<DerivedImage>, BuildError> {
    Ok(engine.inspect_image(tag).await?.and_then(|info| {
        let json = info.labels.get("io.hermetic.packages")?;
        let packages = serde_json::from_str::<Vec<OsPackage>>(json).ok()?;
        Some(DerivedImage {
            image_id: info.id,
            tag: Some(tag.to_string()),
            packages,
        })
    }))
}

/// For a rebuild from a record: the derived builder with exactly the
/// recorded packages. The image the recipe's package list made earlier
/// serves when it has them (the usual case on the machine that made the
/// release); otherwise every recorded package is installed at its recorded
/// version, and one the mirror no longer serves is a [`ReplayError`]
/// naming it, as is any other set of packages than the recorded one.
pub async fn derive_recorded_image(
    ctx: &BuildContext<'_>,
    builder_id: &str,
    family: PackageFamily,
    requested: &[String],
    recorded: &[OsPackage],
) -> Result<DerivedImage, BuildError> {
    if recorded.is_empty() {
        // The fetch added nothing: the builder had every requested package.
        return derive_image(ctx, builder_id, family, &[]).await;
    }
    let (_, usual) = derived_tag(ctx.engine, builder_id, requested);
    if let Some(cached) = cached_derived(ctx.engine, &usual).await?
        && cached.packages == recorded
    {
        info!("recorded system packages cached in {usual}");
        return Ok(cached);
    }
    let pins: Vec<String> = recorded.iter().map(exact_package_spec).collect();
    let shown = pins.join(" ");
    let derived = derive_image(ctx, builder_id, family, &pins)
        .await
        .map_err(|e| match e {
            BuildError::Step { tail, .. } => BuildError::Replay(ReplayError {
                what: "the system packages".into(),
                recorded: shown.clone(),
                found: format!(
                    "an install that failed: {}",
                    tail.last().map(String::as_str).unwrap_or("(no output)")
                ),
            }),
            other => other,
        })?;
    if derived.packages != recorded {
        let names = |v: &[OsPackage]| v.iter().map(exact_package_spec).collect::<Vec<_>>();
        let (want, got) = (names(recorded), names(&derived.packages));
        let missing: Vec<&String> = want.iter().filter(|p| !got.contains(p)).collect();
        let extra: Vec<&String> = got.iter().filter(|p| !want.contains(p)).collect();
        return Err(ReplayError {
            what: "the system packages".into(),
            recorded: shown,
            found: format!("other packages (missing: {missing:?}, extra: {extra:?})"),
        }
        .into());
    }
    Ok(derived)
}

/// `name=version` for apt, `name-version.arch` for dnf and yum.
fn exact_package_spec(p: &OsPackage) -> String {
    if p.kind == "rpm" {
        format!("{}-{}.{}", p.name, p.version, p.arch)
    } else {
        format!("{}={}", p.name, p.version)
    }
}

async fn list_packages(
    container: &crate::engine::Container,
    family: PackageFamily,
) -> Result<Vec<OsPackage>, BuildError> {
    let script = match family {
        PackageFamily::Deb => {
            "dpkg-query -W -f='deb\\t${Package}\\t${Version}\\t${Architecture}\\n'"
        }
        PackageFamily::Rpm => "rpm -qa --qf 'rpm\\t%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{ARCH}\\n'",
    };
    let out = container.exec(&ExecSpec::shell(script)).await?;
    if out.exit_code != 0 {
        return Err(step_failed(
            "list installed packages",
            &out,
            container.log_path(),
        ));
    }
    let mut v: Vec<OsPackage> = out
        .stdout
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some(OsPackage {
                kind: f.next()?.to_string(),
                name: f.next()?.to_string(),
                version: f.next()?.to_string(),
                arch: f.next()?.to_string(),
            })
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Makes sure every pinned requirement has a verified file in the cache,
/// downloading what is missing, and returns the inputs (sorted by name).
#[instrument(skip_all)]
pub async fn fetch_inputs(
    ctx: &BuildContext<'_>,
    image_id: &str,
    python: &str,
    target: &TargetPlan,
) -> Result<Vec<FetchedInput>, BuildError> {
    let pinned = &target.install.pinned;
    if pinned.is_empty() {
        return Ok(vec![]);
    }
    let cache = BlobCache::open()?;
    let missing: Vec<&PinnedRequirement> =
        pinned.iter().filter(|r| cache.find(r).is_none()).collect();
    if !missing.is_empty() {
        info!(missing = missing.len(), "downloading Python inputs");
        download(ctx, image_id, python, target, &cache).await?;
    }
    let mut inputs = Vec::new();
    for req in pinned {
        let (sha256, filename) = cache.find(req).ok_or_else(|| BuildError::InputMissing {
            requirement: format!("{}=={}", req.name, req.version),
            reason: "pip did not download it (is it reachable for this Python and platform?)"
                .into(),
        })?;
        let kind = if filename.ends_with(".whl") {
            InputKind::Wheel
        } else {
            InputKind::Sdist
        };
        inputs.push(FetchedInput {
            filename,
            sha256,
            kind,
            project: crate::recipe::normalize_project_name(&req.name),
            version: req.version.clone(),
        });
    }
    inputs.sort_by(|a, b| a.filename.cmp(&b.filename));
    // A project pinned in both requirement files is one input.
    inputs.dedup();
    Ok(inputs)
}

async fn download(
    ctx: &BuildContext<'_>,
    image_id: &str,
    python: &str,
    target: &TargetPlan,
    cache: &BlobCache,
) -> Result<(), BuildError> {
    let files: Vec<&String> = target
        .install
        .requirements
        .iter()
        .chain(target.install.build_requirements.iter())
        .collect();
    if files.is_empty() {
        return Ok(());
    }
    let engine: &Engine = ctx.engine;
    let spec = ContainerSpec {
        image: image_id.to_string(),
        build_id: ctx.build_id.clone(),
        role: "fetch".into(),
        network: Network::Default,
        hardened: true,
        env: CA_ENV
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .chain(pip_env())
            .chain(["HOME=/tmp".to_string()])
            .collect(),
        // Unprivileged: preparing an sdist's metadata runs its setup code.
        user: Some(super::assemble::BUILD_USER.into()),
    };
    let container = engine.create_container(&spec).await?;
    let result = async {
        container.install_ca_bundle(&ctx.ca_bundle).await?;
        let mut args = Vec::new();
        for (i, file) in files.iter().enumerate() {
            let bytes = fs_err::read(ctx.plan.context_dir.join(file))?;
            let name = format!("requirements-{i}.txt");
            container.put_file(FETCH_DIR, &name, &bytes, 0o644).await?;
            args.push(format!("-r {FETCH_DIR}/{name}"));
        }
        let no_binary = no_binary_arg(&target.install.no_binary);
        // --no-deps: the files list every dependency pinned (pip checks that
        // offline, at install); resolution here could only add unpinned ones.
        let cmd = format!(
            "{py} -m pip download --require-hashes --no-deps --progress-bar off {no_binary} -d {FETCH_DIR}/dl {}",
            args.join(" "),
            py = crate::shell::quote(python)
        );
        let out = container.exec(&ExecSpec::shell(cmd)).await?;
        if out.exit_code != 0 {
            if let Some(mismatch) = parse_hash_mismatch(&out.tail.join("\n")) {
                return Err(mismatch);
            }
            return Err(step_failed("download Python inputs", &out, container.log_path()));
        }
        let tmp = tempfile::tempdir()?;
        let tar = tmp.path().join("dl.tar");
        container.copy_out(&format!("{FETCH_DIR}/dl"), &tar).await?;
        let dest = tmp.path().join("out");
        fs_err::create_dir_all(&dest)?;
        archive::unpack_safe(fs_err::File::open(&tar)?, &dest, archive::unpack_limit()?)?;
        for file in crate::bundle::relocate::walk_files(&dest)? {
            let name = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
            let (hex, _) = archive::sha256_file(&file)?;
            let accepted = target.install.pinned.iter().find(|r| r.sha256.contains(&hex));
            match accepted {
                Some(_) => cache.insert(&file, &hex, &name)?,
                None => {
                    let expected = target
                        .install
                        .pinned
                        .iter()
                        .find(|r| name_matches(&name, &r.name, &r.version))
                        .map(|r| r.sha256.join(" or "))
                        .unwrap_or_else(|| "(no requirement names this file)".into());
                    return Err(BuildError::HashMismatch { file: name, expected, got: hex });
                }
            }
        }
        Ok(())
    }
    .await;
    container.remove().await;
    result
}

/// `--no-binary a,b` (or nothing).
pub fn no_binary_arg(projects: &[String]) -> String {
    if projects.is_empty() {
        String::new()
    } else {
        format!("--no-binary {}", crate::shell::quote(&projects.join(",")))
    }
}

/// Environment for pip in the builder: quiet, reproducible, no cache.
pub fn pip_env() -> Vec<String> {
    [
        "PIP_DISABLE_PIP_VERSION_CHECK=1",
        "PIP_NO_CACHE_DIR=1",
        "PIP_NO_INPUT=1",
        "PYTHONDONTWRITEBYTECODE=1",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

/// Turns pip's "do not match the hashes" report into an error naming the
/// file and both hashes.
fn parse_hash_mismatch(output: &str) -> Option<BuildError> {
    let mut file = None;
    let mut expected = None;
    for line in output.lines() {
        let t = line.trim();
        if t.contains(" from ") && (t.contains("http") || t.contains("file:")) {
            // "six==1.16.0 from https://…/six-1.16.0-py2.py3-none-any.whl#sha256=… (from -r …)"
            if let Some(url) = t.split_whitespace().find(|w| w.contains("://")) {
                let url = url.split('#').next().unwrap_or(url);
                file = url.rsplit('/').next().map(String::from);
            }
        } else if let Some(rest) = t.strip_prefix("Expected sha256 ") {
            expected = Some(rest.trim().to_string());
        } else if let Some(rest) = t.strip_prefix("Got")
            && let Some(exp) = expected.take()
        {
            return Some(BuildError::HashMismatch {
                file: file.unwrap_or_else(|| "(unknown file)".into()),
                expected: exp,
                got: rest.trim().to_string(),
            });
        }
    }
    None
}

fn name_matches(filename: &str, project: &str, version: &str) -> bool {
    let norm = |s: &str| s.to_ascii_lowercase().replace(['-', '.'], "_");
    norm(filename).starts_with(&format!("{}_{}", norm(project), norm(version)))
}

/// The content-addressed download cache on the host.
pub struct BlobCache {
    dir: PathBuf,
}

impl BlobCache {
    /// Opens (creating) the cache directory.
    pub fn open() -> Result<Self, BuildError> {
        let dir = paths::blob_cache();
        fs_err::create_dir_all(&dir)?;
        Ok(BlobCache { dir })
    }

    /// A cached file satisfying the requirement: (sha256, original file name).
    pub fn find(&self, req: &PinnedRequirement) -> Option<(String, String)> {
        req.sha256.iter().find_map(|hex| {
            let blob = self.dir.join(hex);
            let name = fs_err::read_to_string(self.dir.join(format!("{hex}.name"))).ok()?;
            blob.is_file()
                .then(|| (hex.clone(), name.trim().to_string()))
        })
    }

    /// The path of a cached blob.
    pub fn path(&self, hex: &str) -> PathBuf {
        self.dir.join(hex)
    }

    /// Adds a verified file (atomically: copy to a temp name, then rename).
    fn insert(&self, file: &Path, hex: &str, name: &str) -> Result<(), BuildError> {
        let tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        fs_err::copy(file, tmp.path())?;
        tmp.persist(self.dir.join(hex))
            .map_err(|e| BuildError::Io(e.error))?;
        fs_err::write(self.dir.join(format!("{hex}.name")), name)?;
        Ok(())
    }

    /// Copies the given inputs under their original names into `dest`,
    /// re-checking each hash (the cache is on the user's disk: trust nothing).
    pub fn materialize(&self, inputs: &[FetchedInput], dest: &Path) -> Result<(), BuildError> {
        fs_err::create_dir_all(dest)?;
        for input in inputs {
            let target = dest.join(&input.filename);
            fs_err::copy(self.path(&input.sha256), &target)?;
            let (hex, _) = archive::sha256_file(&target)?;
            if hex != input.sha256 {
                return Err(BuildError::HashMismatch {
                    file: format!(
                        "{} (cached at {})",
                        input.filename,
                        self.path(&input.sha256).display()
                    ),
                    expected: input.sha256.clone(),
                    got: hex,
                });
            }
        }
        Ok(())
    }
}

/// Inputs by project name, for lookups.
pub fn by_project(inputs: &[FetchedInput]) -> BTreeMap<&str, &FetchedInput> {
    inputs.iter().map(|i| (i.project.as_str(), i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_hash_mismatch_is_parsed() {
        let out = "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.\n    six==1.16.0 from https://files.example/packages/six-1.16.0-py2.py3-none-any.whl#sha256=8abb (from -r /hermetic/fetch/requirements.txt (line 1)):\n        Expected sha256 0000000000000000000000000000000000000000000000000000000000000000\n             Got        8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254\n";
        match parse_hash_mismatch(out) {
            Some(BuildError::HashMismatch {
                file,
                expected,
                got,
            }) => {
                assert_eq!(file, "six-1.16.0-py2.py3-none-any.whl");
                assert!(expected.starts_with("0000"));
                assert!(got.starts_with("8abb2f"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_normalise() {
        assert!(name_matches("PyYAML-6.0.1.tar.gz", "pyyaml", "6.0.1"));
    }
}

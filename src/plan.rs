//! A build plan: recipe + settings resolved into pure data, before any I/O
//! with the engine. `hermetic build --plan --json` prints it; the executor in
//! `build/` runs it. Keeping the two apart means the plan can be reviewed,
//! diffed and tested without an engine.

use std::path::PathBuf;

use serde::Serialize;

use crate::bundle::{FetchedInput, OsPackage};
use crate::glibc::Glibc;

/// Everything `hermetic build` will do.
#[derive(Debug, Clone, Serialize)]
pub struct BuildPlan {
    /// Version of the hermetic making the plan (it goes into the record).
    pub hermetic_version: String,
    /// Ignore cached outputs (`--rebuild`).
    pub rebuild: bool,
    /// The recipe file.
    pub recipe: PathBuf,
    /// Hex SHA-256 of the recipe file.
    pub recipe_sha256: String,
    /// Bundle name, from the recipe.
    pub name: String,
    /// Bundle version, from the recipe.
    pub version: String,
    /// Where the release files go.
    pub out_dir: PathBuf,
    /// `SOURCE_DATE_EPOCH`: every timestamp in the outputs.
    pub source_date_epoch: u64,
    /// The recipe's directory: the build context copied into the builder.
    pub context_dir: PathBuf,
    /// Files the recipe names (itself, its requirement files): always in
    /// the context, tracked by git or not.
    pub named_files: Vec<PathBuf>,
    /// `[build].compiler`: which C/C++ compilers the build phase uses.
    pub compiler: crate::recipe::Compiler,
    /// A rebuild from a record (`hermetic verify`): the inputs it must use.
    pub replay: Option<Replay>,
    /// One bundle per baseline.
    pub targets: Vec<TargetPlan>,
}

/// The recorded inputs a rebuild must use exactly (`hermetic verify`). A
/// rebuild that cannot have one of them stops with a [`ReplayError`] naming
/// it before anything is built: an input that is gone is not a mismatch.
/// (The recipe's own hash and the builder image are checked by the caller
/// and the resolver; the epoch is passed in.)
#[derive(Debug, Clone, Serialize)]
pub struct Replay {
    /// The build context's tree hash (`archive::tree_hash`).
    pub source_tree_sha256: String,
    /// What that hash covers, entry by entry (`archive::SourceTree`).
    pub source_files: std::collections::BTreeMap<String, String>,
    /// Every fetched wheel and sdist, by file name and hash.
    pub inputs: Vec<FetchedInput>,
    /// The packages the fetch phase added to the builder, at their versions.
    pub system_packages: Vec<OsPackage>,
}

/// A recorded input the rebuild cannot have as recorded.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot rebuild from the record: {what}: the record has {recorded}, this rebuild would have {found}"
)]
pub struct ReplayError {
    /// Which input, e.g. the source tree or a package.
    pub what: String,
    /// What the record has.
    pub recorded: String,
    /// What this rebuild would have instead.
    pub found: String,
}

impl ReplayError {
    /// A line the user can act on.
    pub fn help() -> String {
        "a rebuild uses only the recorded inputs: restore them (the recipe's directory as it was \
         built, the builder image, the Debian packages at their recorded versions), or build anew"
            .into()
    }
}

/// The bundle for one glibc baseline.
#[derive(Debug, Clone, Serialize)]
pub struct TargetPlan {
    /// The baseline this bundle targets.
    pub glibc: Glibc,
    /// `--builder-image`, when given; else the catalog's builder.
    pub builder_override: Option<String>,
    /// `--builder-source`, when given.
    pub builder_source: Option<crate::catalog::Source>,
    /// Runtime Python version wanted, e.g. "3.11".
    pub python: String,
    /// What goes into the runtime.
    pub install: InstallPlan,
    /// The recipe's system packages, per package family.
    pub system_packages: crate::recipe::SystemPackages,
    /// The family of the builder the build starts with, when the catalog
    /// knows it (else the image is asked when the build resolves it).
    pub package_family: Option<crate::catalog::PackageFamily>,
    /// The recipe's build commands, run in order in the builder.
    pub commands: Vec<String>,
    /// Files the build commands make, copied into the bundle.
    pub collect: Vec<CollectPlan>,
    /// Entry points exposed as launchers at the bundle top.
    pub launchers: Vec<String>,
    /// What is removed from the bundle before it is archived.
    pub prune: PrunePlan,
    /// The smoke test, if the recipe has one.
    pub smoke: Option<SmokePlan>,
    /// Suite of the clean runtime image the smoke test runs in.
    pub smoke_suite: String,
    /// Output archive file name.
    pub archive_name: String,
    /// Compression of the archive (its extension follows it).
    pub compression: crate::archive::Compression,
    /// Human-readable steps, in order, with their network access.
    pub steps: Vec<StepPlan>,
}

/// What to install into the runtime.
#[derive(Debug, Clone, Serialize)]
pub struct InstallPlan {
    /// Hash-pinned requirements installed into the runtime, relative to the
    /// context dir.
    pub requirements: Option<String>,
    /// Hash-pinned build requirements (build backends for sdists and the
    /// local project): fetched, available offline, not installed.
    pub build_requirements: Option<String>,
    /// Every pinned file to fetch, from both files.
    pub pinned: Vec<PinnedRequirement>,
    /// Projects to build from source (`pip --no-binary`).
    pub no_binary: Vec<String>,
    /// Local project directory, relative to the context dir.
    pub project: Option<String>,
    /// Whether checked-hash `.pyc` files are shipped.
    pub bytecode: crate::recipe::Bytecode,
}

/// One `name==version --hash=sha256:…` requirement.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PinnedRequirement {
    /// Project name.
    pub name: String,
    /// The pinned version.
    pub version: String,
    /// The hex SHA-256 hashes allowed for its files.
    pub sha256: Vec<String>,
}

/// A file produced by a build command, copied into the bundle.
#[derive(Debug, Clone, Serialize)]
pub struct CollectPlan {
    /// Relative to the build work dir.
    pub from: String,
    /// Relative to the bundle top.
    pub to: String,
}

/// Pruning rules, applied to paths relative to the bundle top.
pub type PrunePlan = crate::recipe::PruneSettings;

/// The smoke test.
#[derive(Debug, Clone, Serialize)]
pub struct SmokePlan {
    /// argv; the first element is relative to the bundle top.
    pub command: Vec<String>,
    /// Substring expected in stdout.
    pub expect: Option<String>,
}

/// One step, for `--plan` output and progress.
#[derive(Debug, Clone, Serialize)]
pub struct StepPlan {
    /// The phase it belongs to: `resolve`, `fetch`, `build` or `finish`.
    pub phase: &'static str,
    /// Whether the step has network access.
    pub network: bool,
    /// What the step does, in one line.
    pub description: String,
}

/// What the user asked for on the command line (and environment), over the
/// recipe's defaults.
#[derive(Debug, Clone, Default)]
pub struct BuildSettings {
    /// Baselines; empty means the recipe's default.
    pub glibc: Vec<Glibc>,
    /// `--out`: where the release files go.
    pub out_dir: PathBuf,
    /// `--builder-image`: a builder to use instead of the catalog's.
    pub builder_image: Option<String>,
    /// `--builder-source`: only the catalog's upstream or only its local
    /// builder, instead of upstream first with the local one as fallback.
    pub builder_source: Option<crate::catalog::Source>,
    /// Runtime suite for the smoke test; default: the newest in the catalog.
    pub smoke_suite: Option<String>,
    /// Build even when cached outputs match every input.
    pub rebuild: bool,
    /// Rebuild from these recorded inputs only (`hermetic verify`).
    pub replay: Option<Replay>,
}

/// Errors turning a recipe into a plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// No runtime image in the catalog is newer than the baseline, so the smoke test has nowhere to run.
    #[error("no runtime image newer than glibc {glibc} to smoke-test on (newest: {newest})")]
    NoNewerRuntime {
        /// The baseline.
        glibc: Glibc,
        /// The newest runtime the catalog has.
        newest: String,
    },
    /// A path in the recipe points outside the recipe's directory.
    #[error("{}: paths must be inside the recipe directory: {path}", recipe.display())]
    Path {
        /// The recipe file.
        recipe: PathBuf,
        /// The path as written.
        path: String,
    },
    /// The catalog has no builder or runtime for the request.
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    /// A recorded input cannot be had for a rebuild.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// The builder's package family has no system package list.
    #[error(transparent)]
    Family(#[from] UncoveredFamily),
    /// The recipe embeds Python, but the only builder on offer has a static CPython.
    #[error(
        "glibc {glibc}: the recipe links libpython (build command {command}), but the builder \
         {image} has a static CPython (no libpython{version}.so), as the manylinux images do, \
         and {why}"
    )]
    StaticLibpython {
        /// The baseline.
        glibc: Glibc,
        /// The builder image.
        image: String,
        /// Which build command links libpython (1-based).
        command: usize,
        /// The Python version wanted.
        version: String,
        /// Why no other builder would be used.
        why: String,
    },
}

/// A builder whose package family the recipe's system packages do not
/// cover: caught while planning when the catalog knows the family, and
/// when the build resolves the builder otherwise, before anything is
/// fetched.
#[derive(Debug, thiserror::Error)]
#[error(
    "glibc {glibc}: the builder {builder} installs {family} packages, and the recipe's \
     build.system_packages has no {family} list ({given})"
)]
pub struct UncoveredFamily {
    /// The baseline.
    pub glibc: Glibc,
    /// The builder's package family.
    pub family: crate::catalog::PackageFamily,
    /// The builder, as a reference or a description.
    pub builder: String,
    /// What the recipe does give.
    pub given: String,
}

impl UncoveredFamily {
    /// A line the user can act on.
    pub fn help() -> String {
        "give a list per family, e.g. system_packages = { deb = [\"libyaml-dev\"], rpm = \
         [\"libyaml-devel\"] } (an empty list for a family that needs none), or choose a \
         builder of a covered family (--builder-source local is Debian)"
            .into()
    }

    /// The recipe's list for `family`, or this error.
    pub fn check<'a>(
        packages: &'a crate::recipe::SystemPackages,
        family: crate::catalog::PackageFamily,
        glibc: Glibc,
        builder: &str,
    ) -> Result<&'a [String], UncoveredFamily> {
        packages.for_family(family).ok_or_else(|| {
            let given: Vec<String> = packages.families().iter().map(|f| f.to_string()).collect();
            UncoveredFamily {
                glibc,
                family,
                builder: builder.to_string(),
                given: format!("it gives {} only; a plain list is deb", given.join(" and ")),
            }
        })
    }
}

impl PlanError {
    /// A line the user can act on.
    pub fn help(&self) -> Option<String> {
        match self {
            PlanError::Replay(_) => Some(ReplayError::help()),
            PlanError::Family(_) => Some(UncoveredFamily::help()),
            PlanError::StaticLibpython { glibc, .. } => Some(format!(
                "build this recipe on a builder with a shared libpython: the local builders have \
                 one (`--builder-source local`, or a baseline with a local builder: `hermetic \
                 images list`); a static CPython cannot be embedded (glibc {glibc})"
            )),
            PlanError::Catalog(e) => e.help(),
            _ => None,
        }
    }
}

/// Resolves a loaded recipe and settings into a plan. Pure: no engine, no
/// network (the source date epoch is passed in).
pub fn from_recipe(
    recipe: &crate::recipe::LoadedRecipe,
    settings: &BuildSettings,
    source_date_epoch: u64,
) -> Result<BuildPlan, PlanError> {
    let catalog = crate::catalog::Catalog::active()?;
    let baselines = if settings.glibc.is_empty() {
        vec![recipe.glibc]
    } else {
        settings.glibc.clone()
    };
    let relative = |p: &std::path::Path| -> Result<String, PlanError> {
        p.strip_prefix(&recipe.dir)
            .map(|r| r.to_string_lossy().into_owned())
            .map_err(|_| PlanError::Path {
                recipe: recipe.path.clone(),
                path: p.display().to_string(),
            })
    };
    let requirements = recipe
        .install
        .requirements
        .as_ref()
        .map(|r| relative(&r.path))
        .transpose()?;
    let build_requirements = recipe
        .install
        .build_requirements
        .as_ref()
        .map(|r| relative(&r.path))
        .transpose()?;
    let project = recipe
        .install
        .project
        .as_ref()
        .map(|p| relative(p))
        .transpose()?;
    let mut pinned: Vec<PinnedRequirement> = recipe
        .install
        .requirements
        .iter()
        .chain(recipe.install.build_requirements.iter())
        .flat_map(|r| r.entries.iter())
        .map(|e| PinnedRequirement {
            name: e.name.clone(),
            version: e.version.clone(),
            sha256: e.sha256.clone(),
        })
        .collect();
    pinned.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    pinned.dedup();
    if let Some(replay) = &settings.replay {
        pin_to_record(&mut pinned, &replay.inputs)?;
    }

    let mut targets = Vec::new();
    for glibc in baselines {
        let entry = catalog.builder(glibc)?;
        // A recipe that cannot install its packages in the builder the
        // build starts with stops here, not after a pull.
        let package_family = match settings.builder_image {
            Some(_) => None,
            None => catalog.planned_family(glibc, settings.builder_source),
        };
        if let Some(family) = package_family {
            let builder = match (settings.builder_source, &entry.reference) {
                (Some(crate::catalog::Source::Local), _) | (_, None) => {
                    format!("local glibc {glibc} builder")
                }
                (_, Some(reference)) => reference.clone(),
            };
            UncoveredFamily::check(&recipe.build.system_packages, family, glibc, &builder)?;
        }
        // The shipped upstream builders are manylinux images, whose CPython
        // is static: embedding cannot work on them. When no local builder
        // can stand in for them, say so now (else the resolver decides, once
        // it knows whether a registry answers).
        let upstream_only = settings.builder_source == Some(crate::catalog::Source::Upstream)
            || catalog.local_builder(glibc).is_none();
        if settings.builder_image.is_none()
            && settings.builder_source != Some(crate::catalog::Source::Local)
            && entry.source == crate::catalog::Source::Upstream
            && entry.origin == crate::catalog::Origin::Shipped
            && upstream_only
            && let Some(command) = links_libpython(&recipe.build.commands)
        {
            return Err(PlanError::StaticLibpython {
                glibc,
                image: entry.reference.clone().unwrap_or_default(),
                command,
                version: recipe.python.clone(),
                why: match settings.builder_source {
                    Some(_) => "--builder-source upstream asks for it".into(),
                    None => format!("the catalog has no local builder for glibc {glibc}"),
                },
            });
        }
        let smoke_suite = match &settings.smoke_suite {
            Some(s) => {
                catalog.runtime(s)?;
                s.clone()
            }
            None => {
                let newest = catalog.newest_runtime().map(|r| (r.suite.clone(), r.glibc));
                match newest {
                    Some((suite, g)) if g >= glibc => suite,
                    Some((suite, _)) => {
                        return Err(PlanError::NoNewerRuntime {
                            glibc,
                            newest: suite,
                        });
                    }
                    None => {
                        return Err(PlanError::NoNewerRuntime {
                            glibc,
                            newest: "none".into(),
                        });
                    }
                }
            }
        };
        let install = InstallPlan {
            requirements: requirements.clone(),
            build_requirements: build_requirements.clone(),
            pinned: pinned.clone(),
            no_binary: recipe.install.no_binary.clone(),
            project: project.clone(),
            bytecode: recipe.install.bytecode,
        };
        let steps = steps_for(recipe, &install, glibc, &smoke_suite, package_family);
        targets.push(TargetPlan {
            glibc,
            builder_override: settings.builder_image.clone(),
            builder_source: settings.builder_source,
            python: recipe.python.clone(),
            install,
            system_packages: recipe.build.system_packages.clone(),
            package_family,
            commands: recipe.build.commands.clone(),
            collect: recipe
                .build
                .collect
                .iter()
                .map(|c| CollectPlan {
                    from: c.from.clone(),
                    to: c.to.clone(),
                })
                .collect(),
            launchers: recipe.install.launchers.clone(),
            prune: recipe.prune.clone(),
            smoke: Some(SmokePlan {
                command: recipe.smoke.command.clone(),
                expect: recipe.smoke.expect.clone(),
            }),
            smoke_suite,
            archive_name: format!(
                "{}-{}-linux-x86_64-glibc{glibc}.{}",
                recipe.name,
                recipe.version,
                recipe.compression.extension()
            ),
            compression: recipe.compression,
            steps,
        });
    }
    Ok(BuildPlan {
        hermetic_version: env!("CARGO_PKG_VERSION").to_string(),
        rebuild: settings.rebuild,
        recipe: recipe.path.clone(),
        recipe_sha256: recipe.sha256.clone(),
        name: recipe.name.clone(),
        version: recipe.version.clone(),
        out_dir: settings.out_dir.clone(),
        source_date_epoch,
        context_dir: recipe.dir.clone(),
        compiler: recipe.build.compiler,
        named_files: std::iter::once(recipe.path.clone())
            .chain(
                [
                    &recipe.install.requirements,
                    &recipe.install.build_requirements,
                ]
                .into_iter()
                .flatten()
                .map(|r| r.path.clone()),
            )
            .collect(),
        replay: settings.replay.clone(),
        targets,
    })
}

/// Narrows every pinned requirement to the one file the record lists for
/// it, so that a requirement accepting several files (one per platform, say)
/// is fetched as it was. The recipe and the record must name the same
/// projects at the same versions, and the recipe must accept each recorded
/// hash.
fn pin_to_record(
    pinned: &mut [PinnedRequirement],
    recorded: &[FetchedInput],
) -> Result<(), ReplayError> {
    let key = |name: &str, version: &str| {
        format!("{}=={version}", crate::recipe::normalize_project_name(name))
    };
    let mut by_key: std::collections::BTreeMap<String, &FetchedInput> = recorded
        .iter()
        .map(|i| (key(&i.project, &i.version), i))
        .collect();
    // A project pinned in both requirement files is one input.
    let mut used = std::collections::BTreeMap::new();
    for req in pinned.iter_mut() {
        let k = key(&req.name, &req.version);
        let Some(input) = by_key.remove(&k).or_else(|| used.get(&k).copied()) else {
            return Err(ReplayError {
                what: format!("Python input {k}"),
                recorded: "no such input".into(),
                found: "a requirement for it in the recipe".into(),
            });
        };
        if !req.sha256.contains(&input.sha256) {
            return Err(ReplayError {
                what: format!("Python input {}", input.filename),
                recorded: format!("sha256 {}", input.sha256),
                found: format!("a recipe accepting only {}", req.sha256.join(" or ")),
            });
        }
        req.sha256 = vec![input.sha256.clone()];
        used.insert(k, input);
    }
    if let Some((k, input)) = by_key.into_iter().next() {
        return Err(ReplayError {
            what: format!("Python input {k}"),
            recorded: input.filename.clone(),
            found: "no requirement for it in the recipe".into(),
        });
    }
    Ok(())
}

/// The 1-based index of the first build command that links libpython
/// (`-lpython3.X`, `python3-config --embed`, pkg-config's `python-3.X-embed`).
pub fn links_libpython(commands: &[String]) -> Option<usize> {
    commands
        .iter()
        .position(|c| c.contains("-lpython") || c.contains("-embed"))
        .map(|i| i + 1)
}

fn steps_for(
    recipe: &crate::recipe::LoadedRecipe,
    install: &InstallPlan,
    glibc: Glibc,
    smoke_suite: &str,
    family: Option<crate::catalog::PackageFamily>,
) -> Vec<StepPlan> {
    let step = |phase, network, description: String| StepPlan {
        phase,
        network,
        description,
    };
    let mut v = vec![step(
        "resolve",
        false,
        format!("resolve the glibc {glibc} builder and check the glibc inside it"),
    )];
    let packages = &recipe.build.system_packages;
    match family.and_then(|f| Some((f, packages.for_family(f)?))) {
        Some((_, [])) => {}
        Some((family, names)) => v.push(step(
            "fetch",
            true,
            format!("install system packages ({family}: {})", names.join(", ")),
        )),
        None if packages.is_empty() => {}
        None => v.push(step(
            "fetch",
            true,
            format!(
                "install system packages, the list of the builder's family ({})",
                packages.describe()
            ),
        )),
    }
    if !install.pinned.is_empty() {
        v.push(step(
            "fetch",
            true,
            format!(
                "download {} hash-pinned Python file(s) into the cache",
                install.pinned.len()
            ),
        ));
    }
    v.push(step(
        "build",
        false,
        "copy the CPython runtime into the bundle".into(),
    ));
    if let Some(r) = &install.requirements {
        v.push(step(
            "build",
            false,
            format!("pip install --require-hashes -r {r} (offline)"),
        ));
    }
    if let Some(p) = &install.project {
        v.push(step("build", false, format!("pip install {p} (offline)")));
    }
    for c in &recipe.build.commands {
        v.push(step("build", false, format!("run: {c}")));
    }
    v.push(step(
        "build",
        false,
        "vendor non-policy libraries, make RPATHs $ORIGIN-relative".into(),
    ));
    v.push(step(
        "finish",
        false,
        "relocate, write launchers, prune".into(),
    ));
    if install.bytecode == crate::recipe::Bytecode::CheckedHash {
        v.push(step(
            "finish",
            false,
            "compile checked-hash .pyc files (PEP 552) in the builder".into(),
        ));
    }
    v.push(step(
        "finish",
        false,
        "archive deterministically, write record, provenance and SBOM".into(),
    ));
    v.push(step(
        "smoke",
        false,
        format!(
            "run `{}` from a random path on {smoke_suite}",
            recipe.smoke.command.join(" ")
        ),
    ));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::InputKind;

    fn input(project: &str, version: &str, sha: &str) -> FetchedInput {
        FetchedInput {
            filename: format!("{project}-{version}.whl"),
            sha256: sha.repeat(64),
            kind: InputKind::Wheel,
            project: project.into(),
            version: version.into(),
        }
    }

    fn req(name: &str, version: &str, shas: &[&str]) -> PinnedRequirement {
        PinnedRequirement {
            name: name.into(),
            version: version.into(),
            sha256: shas.iter().map(|s| s.repeat(64)).collect(),
        }
    }

    #[test]
    fn replay_narrows_each_requirement_to_the_recorded_file() {
        // six is pinned twice (in both requirement files, with other hashes).
        let mut pinned = vec![
            req("Foo_Bar", "1.0", &["a", "b"]),
            req("six", "1.16.0", &["c"]),
            req("six", "1.16.0", &["c", "f"]),
        ];
        let recorded = [input("foo-bar", "1.0", "b"), input("six", "1.16.0", "c")];
        pin_to_record(&mut pinned, &recorded).unwrap();
        assert_eq!(pinned[0].sha256, vec!["b".repeat(64)]);
        assert_eq!(pinned[1].sha256, vec!["c".repeat(64)]);
        assert_eq!(pinned[2].sha256, vec!["c".repeat(64)]);
    }

    #[test]
    fn replay_refuses_inputs_the_recipe_and_record_disagree_on() {
        // A recorded hash the recipe no longer accepts.
        let err = pin_to_record(
            &mut [req("six", "1.16.0", &["c"])],
            &[input("six", "1.16.0", "d")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("six-1.16.0.whl") && err.contains(&"d".repeat(64)),
            "{err}"
        );
        // Another version in the recipe than in the record.
        let err = pin_to_record(
            &mut [req("six", "1.17.0", &["c"])],
            &[input("six", "1.16.0", "c")],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("six==1.17.0"), "{err}");
        // A recorded input the recipe no longer asks for.
        let err = pin_to_record(&mut [], &[input("six", "1.16.0", "c")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("six==1.16.0") && err.contains("no requirement"),
            "{err}"
        );
    }
}

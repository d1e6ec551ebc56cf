//! A build plan: recipe + settings resolved into pure data, before any I/O
//! with the engine. `hermetic build --plan --json` prints it; the executor in
//! `build/` runs it. Keeping the two apart means the plan can be reviewed,
//! diffed and tested without an engine.

use std::path::PathBuf;

use serde::Serialize;

use crate::catalog::Glibc;

/// Everything `hermetic build` will do.
#[derive(Debug, Clone, Serialize)]
pub struct BuildPlan {
    pub hermetic_version: String,
    /// Ignore cached outputs (`--rebuild`).
    pub rebuild: bool,
    pub recipe: PathBuf,
    pub recipe_sha256: String,
    pub name: String,
    pub version: String,
    pub out_dir: PathBuf,
    pub source_date_epoch: u64,
    /// The recipe's directory: the build context copied into the builder.
    pub context_dir: PathBuf,
    /// One bundle per baseline.
    pub targets: Vec<TargetPlan>,
}

/// The bundle for one glibc baseline.
#[derive(Debug, Clone, Serialize)]
pub struct TargetPlan {
    pub glibc: Glibc,
    /// `--builder-image`, when given; else the catalog's builder.
    pub builder_override: Option<String>,
    /// Runtime Python version wanted, e.g. "3.11".
    pub python: String,
    pub install: InstallPlan,
    pub system_packages: Vec<String>,
    pub commands: Vec<String>,
    pub collect: Vec<CollectPlan>,
    pub launchers: Vec<String>,
    pub prune: PrunePlan,
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
}

/// One `name==version --hash=sha256:…` requirement.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PinnedRequirement {
    pub name: String,
    pub version: String,
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
    pub phase: &'static str,
    pub network: bool,
    pub description: String,
}

/// What the user asked for on the command line (and environment), over the
/// recipe's defaults.
#[derive(Debug, Clone, Default)]
pub struct BuildSettings {
    /// Baselines; empty means the recipe's default.
    pub glibc: Vec<Glibc>,
    pub out_dir: PathBuf,
    pub builder_image: Option<String>,
    /// Runtime suite for the smoke test; default: the newest in the catalog.
    pub smoke_suite: Option<String>,
    /// Build even when cached outputs match every input.
    pub rebuild: bool,
}

/// Errors turning a recipe into a plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{}: glibc baseline `{value}` is invalid: {reason}", recipe.display())]
    Baseline {
        recipe: PathBuf,
        value: String,
        reason: String,
    },
    #[error("no runtime image newer than glibc {glibc} to smoke-test on (newest: {newest})")]
    NoNewerRuntime { glibc: Glibc, newest: String },
    #[error("{}: paths must be inside the recipe directory: {path}", recipe.display())]
    Path { recipe: PathBuf, path: String },
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
}

/// Resolves a loaded recipe and settings into a plan. Pure: no engine, no
/// network (the source date epoch is passed in).
pub fn from_recipe(
    recipe: &crate::recipe::LoadedRecipe,
    settings: &BuildSettings,
    source_date_epoch: u64,
) -> Result<BuildPlan, PlanError> {
    let catalog = crate::catalog::Catalog::embedded()?;
    let baselines = if settings.glibc.is_empty() {
        vec![
            recipe
                .glibc
                .parse::<Glibc>()
                .map_err(|e| PlanError::Baseline {
                    recipe: recipe.path.clone(),
                    value: recipe.glibc.clone(),
                    reason: e.to_string(),
                })?,
        ]
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

    let mut targets = Vec::new();
    for glibc in baselines {
        catalog.builder(glibc)?;
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
        };
        let steps = steps_for(recipe, &install, glibc, &smoke_suite);
        targets.push(TargetPlan {
            glibc,
            builder_override: settings.builder_image.clone(),
            python: recipe.python.clone(),
            install,
            system_packages: recipe.build.system_packages.clone(),
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
        targets,
    })
}

fn steps_for(
    recipe: &crate::recipe::LoadedRecipe,
    install: &InstallPlan,
    glibc: Glibc,
    smoke_suite: &str,
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
    if !recipe.build.system_packages.is_empty() {
        v.push(step(
            "fetch",
            true,
            format!(
                "install system packages: {}",
                recipe.build.system_packages.join(", ")
            ),
        ));
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
        "relocate, write launchers, prune, archive deterministically".into(),
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

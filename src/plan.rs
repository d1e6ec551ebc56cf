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
    /// Human-readable steps, in order, with their network access.
    pub steps: Vec<StepPlan>,
}

/// What to install into the runtime.
#[derive(Debug, Clone, Serialize)]
pub struct InstallPlan {
    /// Hash-pinned requirements file, relative to the context dir.
    pub requirements: Option<String>,
    /// Pinned requirements (name, version, accepted sha256 hashes).
    pub pinned: Vec<PinnedRequirement>,
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
#[derive(Debug, Clone, Serialize)]
pub struct PrunePlan {
    pub exclude: Vec<String>,
    pub keep: Vec<String>,
}

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

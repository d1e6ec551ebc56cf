//! Builder and runtime-base images on the engine: making local ones from
//! Debian's mirror ([`make`], with host rootfs tarballs from [`rootfs`]),
//! recording what was made ([`lock`]), and choosing and checking the builder
//! a build runs in ([`resolve`]).
//!
//! Data flow for `hermetic images build --glibc 2.31`: the catalog entry
//! ([`crate::catalog`]) -> its inputs hash -> if the lock names an image
//! with that hash and the engine has it, done; otherwise mmdebstrap a
//! minbase rootfs, write it as a one-layer base image, build the Dockerfile
//! on top, flatten that into a reproducible image ([`flatten`]), and record
//! its image ID and package versions in the lock. A build then resolves its
//! baseline to exactly that image ID and checks the glibc inside it; its
//! record pins the builder by that ID and the inputs hash, which is all
//! `verify` needs to make it again elsewhere ([`make::remake_recorded`]).

pub mod download;
pub mod flatten;
pub mod load;
pub mod lock;
pub mod make;
pub mod resolve;
pub mod rootfs;

use std::path::PathBuf;

pub use lock::{Lock, LockedImage};
pub use make::{ReadyImage, build_local_builder, ensure_base};
pub use resolve::{ListedImage, ResolvedBuilder, image_glibc, list, resolve_builder, runtime_base};
pub use rootfs::{RootfsTarball, ensure_rootfs};

use crate::catalog::CatalogError;
use crate::engine::EngineError;
use crate::glibc::Glibc;

/// Errors making, finding and checking builder and base images.
#[derive(Debug, thiserror::Error)]
pub enum BuilderError {
    /// The catalog has no such entry, or is broken.
    #[error(transparent)]
    Catalog(#[from] CatalogError),

    /// `images build` for a baseline whose builder comes from a registry.
    #[error("the glibc {glibc} builder is an upstream image, not one made locally")]
    NotLocal {
        /// The baseline asked for.
        glibc: Glibc,
        /// Baselines that do have local builders.
        local: Vec<Glibc>,
    },

    /// `--builder-source` names a source the catalog has no builder of for
    /// the baseline.
    #[error("the catalog has no {wanted} builder for glibc {glibc}")]
    NoSuchBuilder {
        /// The baseline.
        glibc: Glibc,
        /// The source asked for.
        wanted: crate::catalog::Source,
        /// Baselines that have a builder of that source.
        baselines: Vec<Glibc>,
    },

    /// A local builder that has not been made (or is stale, or gone).
    #[error("local builder for glibc {glibc} is not available: {reason}")]
    LocalMissing {
        /// The baseline.
        glibc: Glibc,
        /// Why it is not usable.
        reason: String,
    },

    /// A runtime base that has not been made.
    #[error("runtime base image for {suite} has not been made")]
    BaseMissing {
        /// The suite.
        suite: String,
    },

    /// The image's own glibc is newer than the baseline it would build for.
    #[error("image {image} has glibc {found}, newer than the requested baseline {requested}")]
    GlibcTooNew {
        /// The image.
        image: String,
        /// The glibc inside it.
        found: Glibc,
        /// The baseline asked for.
        requested: Glibc,
    },

    /// The builder has no interpreter for the recipe's Python.
    #[error("builder {image} has no usable {python}: {reason}")]
    NoPython {
        /// The image reference.
        image: String,
        /// `python3.11`.
        python: String,
        /// What went wrong, and the prefixes looked at.
        reason: String,
    },

    /// The recipe links libpython but the builder's CPython is static.
    #[error(
        "glibc {glibc}: the recipe links libpython (build command {command}), but the builder {image} has a static CPython (no libpython{version}.so), as the manylinux images do"
    )]
    StaticLibpython {
        /// The baseline.
        glibc: Glibc,
        /// The builder.
        image: String,
        /// The first build command that links it (1-based).
        command: usize,
        /// `3.11`.
        version: String,
    },

    /// No libc in the image at any known path.
    #[error("no libc.so.6 found in image {image}")]
    NoLibc {
        /// The image.
        image: String,
    },

    /// A libc that does not say its version.
    #[error("cannot read the glibc version from {path} in image {image}: {reason}")]
    Libc {
        /// The image.
        image: String,
        /// The libc file inside it.
        path: String,
        /// What went wrong.
        reason: String,
    },

    /// A pinned download that failed or did not match its hash.
    #[error("downloading {url} failed: {reason}")]
    Download {
        /// What was fetched.
        url: String,
        /// What went wrong.
        reason: String,
    },

    /// A toolchain builder whose own CPython does not meet its baseline.
    #[error(
        "the toolchain builder {image} does not target glibc {glibc}: {count} finding(s) in its CPython and libraries, e.g. {}",
        first.join("; ")
    )]
    ToolchainAudit {
        /// The image.
        image: String,
        /// The baseline it claims.
        glibc: Glibc,
        /// How many findings.
        count: usize,
        /// The first few, `file: message`.
        first: Vec<String>,
    },

    /// Neither bootstrap tool is installed on the host.
    #[error("neither mmdebstrap nor debootstrap is installed")]
    NoBootstrapTool,

    /// mmdebstrap/debootstrap failed.
    #[error("making the {suite} rootfs failed ({status}); see {}", log.display())]
    Rootfs {
        /// The suite.
        suite: String,
        /// The tool's log.
        log: PathBuf,
        /// Its exit status.
        status: String,
    },

    /// `images load`: an archive that is not a readable, intact image.
    #[error("image archive {}: {reason}", archive.display())]
    BadArchive {
        /// The archive.
        archive: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// `images load`: an intact image that no catalog entry pins.
    #[error("image archive {} is no builder the catalog pins: it holds {}", archive.display(), found.join(", "))]
    NotInCatalog {
        /// The archive.
        archive: PathBuf,
        /// The digests or IDs it holds.
        found: Vec<String>,
        /// What to do, when the format explains it.
        hint: Option<String>,
    },

    /// `images load`: the engine ended up with another image than promised.
    #[error("loading {} did not give the image {expected}", archive.display())]
    LoadedOther {
        /// The archive.
        archive: PathBuf,
        /// The config digest it promised.
        expected: String,
    },

    /// Flattening an image into one reproducible layer failed.
    #[error("flattening {image} into a reproducible image failed: {reason}")]
    Flatten {
        /// The image (or layer) being read.
        image: String,
        /// What went wrong.
        reason: String,
    },

    /// A remade image would hold other package versions than the locked
    /// (or recorded) ones.
    #[error(
        "remaking {image} would install other package versions than {against} locks: {}{}",
        changes.iter().take(8).cloned().collect::<Vec<_>>().join("; "),
        if changes.len() > 8 { format!("; and {} more", changes.len() - 8) } else { String::new() }
    )]
    PackagesChanged {
        /// The image being made.
        image: String,
        /// Where the locked versions come from (the image lock, a record).
        against: String,
        /// `name: locked 1.0, now 1.1`, one per package.
        changes: Vec<String>,
    },

    /// A builder remade from a record's inputs is not the recorded image.
    #[error(
        "the glibc {glibc} builder remade from inputs {inputs_hash} is {got}, not the recorded {expected}"
    )]
    RemadeDiffers {
        /// The baseline.
        glibc: Glibc,
        /// The catalog inputs hash it was made from.
        inputs_hash: String,
        /// The recorded image ID.
        expected: String,
        /// The ID it got.
        got: String,
    },

    /// A record names a builder made from catalog inputs this hermetic
    /// does not have.
    #[error(
        "the record's glibc {glibc} builder was made from catalog inputs {recorded}; this hermetic's catalog gives {current}"
    )]
    InputsMoved {
        /// The baseline.
        glibc: Glibc,
        /// The recorded inputs hash.
        recorded: String,
        /// The catalog's.
        current: String,
    },

    /// The lock file does not parse.
    #[error("lock file {} is unreadable: {reason}", path.display())]
    BadLock {
        /// The lock file.
        path: PathBuf,
        /// The parse error.
        reason: String,
    },

    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),

    /// Hashing a tarball failed.
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),

    /// Host I/O failed (fs_err names the path).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl BuilderError {
    /// A line the user can act on.
    pub fn help(&self) -> Option<String> {
        match self {
            BuilderError::LocalMissing { glibc, .. } => {
                Some(format!("run `hermetic images build --glibc {glibc}`"))
            }
            BuilderError::NotInCatalog { hint, .. } => Some(hint.clone().unwrap_or_else(|| {
                "pin the image in a user catalog (--catalog): [[builder]] glibc = \"…\", \
                 reference = \"name@<manifest digest>\"; `hermetic images list` shows the pins"
                    .into()
            })),
            BuilderError::BaseMissing { suite } => {
                Some(format!("run `hermetic images build --base {suite}`"))
            }
            BuilderError::NoSuchBuilder {
                wanted, baselines, ..
            } => Some(format!(
                "{wanted} builders exist for glibc {}; without --builder-source the catalog's \
                 default is used",
                baselines
                    .iter()
                    .map(|g| g.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            BuilderError::NotLocal { local, .. } => Some(format!(
                "local builders exist for glibc {}",
                local
                    .iter()
                    .map(|g| g.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            BuilderError::Download { .. } => Some(
                "the host needs to reach that URL once (the file is cached under $HERMETIC_HOME/downloads); behind a proxy, set SSL_CERT_FILE to its CA bundle"
                    .into(),
            ),
            BuilderError::GlibcTooNew { .. } => Some(
                "pick a builder whose glibc is at most the baseline (`hermetic images list`), or raise --glibc"
                    .into(),
            ),
            BuilderError::StaticLibpython { .. } => Some(
                "build this recipe on a builder with a shared libpython: the local builders (`hermetic images build --glibc 2.31`) have one; a static CPython cannot be embedded"
                    .into(),
            ),
            BuilderError::NoPython { .. } => Some(
                "the builder needs the recipe's CPython at the catalog's prefix or under /opt/python/cpXY-cpXY".into(),
            ),
            BuilderError::PackagesChanged { .. } => Some(
                "the mirror now serves other versions than the lock (or the record) names: \
                 remake against a mirror snapshot of that time (`mirror` in the catalog, e.g. \
                 snapshot.debian.org), or drop the lock entry to accept the new versions"
                    .into(),
            ),
            BuilderError::InputsMoved { .. } | BuilderError::RemadeDiffers { .. } => Some(
                "verify with the hermetic version the record names, or `docker load` the \
                 recorded builder image"
                    .into(),
            ),
            BuilderError::NoBootstrapTool => {
                Some("install one: `apt-get install mmdebstrap`".into())
            }
            BuilderError::Catalog(e) => e.help(),
            BuilderError::Engine(e) => e.help(),
            _ => None,
        }
    }
}

/// Milliseconds since `started`, for reports.
fn ms(started: std::time::Instant) -> u64 {
    started.elapsed().as_millis() as u64
}

//! The top-level error: one variant per domain, each wrapping that domain's
//! own `thiserror` enum, plus the process exit-code policy.
//!
//! Exit codes: 0 success, 1 a check failed (audit, verify, smoke), 2 usage or
//! infrastructure error, 128 + signal when interrupted, 141 when stdout or
//! stderr was closed, 101 after a panic. A failed check is not an `Error`: commands return
//! [`Outcome::CheckFailed`] for it, so that the error path stays reserved for
//! "hermetic could not do its job".

/// Result of a library operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a command concluded when it ran to completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything worked and every check passed.
    Success,
    /// The command ran, but a check it performs failed (exit code 1).
    CheckFailed,
}

/// Any error hermetic reports to the user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The container engine failed or refused.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    /// The builder catalog could not be read, or has no builder or base asked for.
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    /// A builder or base image could not be made or checked.
    #[error(transparent)]
    Builder(#[from] crate::builder::BuilderError),
    /// A glibc baseline is not of the form `2.<n>`.
    #[error(transparent)]
    Glibc(#[from] crate::glibc::GlibcError),
    /// An ELF file could not be read, audited or repaired.
    #[error(transparent)]
    Elf(#[from] crate::elf::ElfError),
    /// An archive could not be written, read or unpacked.
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    /// The recipe could not be found, read or parsed.
    #[error(transparent)]
    Recipe(#[from] crate::recipe::RecipeError),
    /// The recipe does not make a valid build plan.
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    /// A build step failed.
    #[error(transparent)]
    Build(#[from] crate::build::BuildError),
    /// The SBOM could not be made or written.
    #[error(transparent)]
    Sbom(#[from] crate::sbom::SbomError),
    /// An OCI image could not be made, read or pushed.
    #[error(transparent)]
    Oci(#[from] crate::oci::OciError),
    /// A verification could not be carried out.
    #[error(transparent)]
    Verify(#[from] crate::verify::VerifyError),
    /// An I/O error outside any domain above.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Bad arguments that clap could not catch (e.g. an unknown baseline).
    #[error("{0}")]
    Usage(String),
    /// SIGINT or SIGTERM arrived; hermetic's containers were removed.
    #[error("interrupted by signal {signal}; removed hermetic's containers")]
    Interrupted {
        /// The signal number (SIGINT 2, SIGTERM 15).
        signal: i32,
    },
    /// The reader of stdout or stderr went away (`hermetic … | head`):
    /// the run ended there, and hermetic's containers were removed.
    #[error("{stream} was closed; stopped and removed hermetic's containers")]
    OutputClosed {
        /// The stream whose reader went away.
        stream: crate::term::Stream,
    },
    /// A bug: hermetic panicked (the panic message is above); its
    /// containers were removed.
    #[error("hermetic panicked (a bug); removed its containers")]
    Panicked,
}

impl Error {
    /// A line the user can act on, printed after the error itself.
    pub fn help(&self) -> Option<String> {
        match self {
            Error::Engine(e) => e.help(),
            Error::Catalog(e) => e.help(),
            Error::Builder(e) => e.help(),
            Error::Plan(e) => e.help(),
            Error::Build(e) => e.help(),
            Error::Oci(e) => e.help(),
            Error::Verify(e) => e.help(),
            _ => None,
        }
    }

    /// The process exit code: 128 + signal after an interrupt, 141 (128 +
    /// SIGPIPE, what a process killed by SIGPIPE gives) when stdout or
    /// stderr was closed, 101 after a panic (Rust's own code for one), else
    /// 2 (infrastructure or usage error).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Interrupted { signal } => 128u8.saturating_add(*signal as u8),
            Error::OutputClosed { .. } => 128 + libc::SIGPIPE as u8,
            Error::Panicked => 101,
            _ => 2,
        }
    }
}

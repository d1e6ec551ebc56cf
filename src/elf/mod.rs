//! ELF facts, manylinux policy tables, audit and repair planning.
//!
//! Data flows one way through this module:
//!
//! 1. [`tree`] walks a directory or reads a tar stream and hands every file
//!    that carries the ELF magic to [`reader`], in parallel; the reader turns
//!    bytes into [`reader::ElfFacts`] (goblin does the parsing, nothing here
//!    writes to disk).
//! 2. [`policy`] holds the manylinux policy table (embedded data) and answers
//!    membership questions: is this symbol version allowed, may this library
//!    come from the host, is this symbol blacklisted.
//! 3. [`audit`] is facts x policy: it produces an [`audit::AuditReport`] with
//!    one finding per problem and the oldest baseline the tree satisfies.
//! 4. [`repair`] is pure planning: given the facts of a bundle and a
//!    [`repair::LibraryResolver`] (implemented by the engine layer against a
//!    builder container), it computes which libraries to vendor and which
//!    `patchelf` edits to make, and renders them as one POSIX sh script.
//!
//! Path handling inside a tree (symlinks, `$ORIGIN`, ld.so search order) lives
//! in [`search`], shared by audit and repair.

pub mod audit;
pub mod policy;
pub mod reader;
pub mod repair;
pub mod search;
pub mod tree;

#[cfg(test)]
pub(crate) mod testelf;

use std::path::PathBuf;

/// Errors reading, auditing or planning the repair of ELF files.
///
/// Every variant names the file, baseline or library it is about, so that the
/// message alone tells the user where to look.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file starts with the ELF magic but cannot be parsed.
    #[error("{} is not a valid ELF file: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        reason: String,
    },
    /// The file is named like a shared library but is not an ELF file.
    #[error("{} is named like a shared library but is not an ELF file ({reason})", path.display())]
    NotElf {
        /// The file.
        path: PathBuf,
        /// Why it is not ELF.
        reason: String,
    },
    /// An ELF entry of an archive is larger than the audit reads into memory.
    #[error("{} is {size} bytes, more than the {limit} bytes an ELF file inside an archive may have to be audited; unpack the archive and audit the directory", path.display())]
    TooLarge {
        /// The entry, by its path in the archive.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The largest size read into memory.
        limit: u64,
    },
    /// A tar archive could not be read.
    #[error("cannot read archive {}: {reason}", path.display())]
    Archive {
        /// The archive.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An archive that is damaged: a bad checksum, trailing data, a
    /// truncated or undecodable stream (the error names the archive).
    #[error(transparent)]
    CorruptArchive(crate::archive::ArchiveError),
    /// A tar entry names a path outside the archive root (absolute or `..`).
    #[error("archive {} has an entry outside its root: {entry}", path.display())]
    UnsafeArchiveEntry {
        /// The archive.
        path: PathBuf,
        /// The entry's path.
        entry: String,
    },
    /// The glibc baseline has no manylinux policy.
    #[error("no manylinux policy for glibc {glibc}; known baselines: {known}")]
    UnknownBaseline {
        /// The baseline asked for.
        glibc: String,
        /// The baselines that have a policy, comma-separated.
        known: String,
    },
    /// The embedded policy table is broken (a build defect, not a user error).
    #[error("embedded manylinux policy table is invalid: {reason}")]
    PolicyTable {
        /// What is wrong with it.
        reason: String,
    },
    /// A `libc.so.6` has no `GLIBC_2.x` version definition.
    #[error("{} defines no GLIBC_2.x symbol version; is it glibc's libc.so.6?", path.display())]
    NotGlibc {
        /// The library.
        path: PathBuf,
    },
    /// The library resolver (builder container) failed while looking a library up.
    #[error("cannot resolve {soname} (needed by {needed_by}): {reason}")]
    Resolve {
        /// The library looked for.
        soname: String,
        /// The file that needs it.
        needed_by: String,
        /// What failed.
        reason: String,
    },
    /// A repair plan left libraries that no search path provides.
    #[error("repair cannot find these libraries in the builder: {missing}")]
    Unresolved {
        /// `soname (needed by file)` entries, capped for one line.
        missing: String,
    },
}

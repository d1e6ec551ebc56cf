//! hermetic: self-contained, relocatable Python application bundles, built
//! inside pinned builder images, audited against a glibc baseline, and
//! reproducible bit for bit.
//!
//! The binary (`src/main.rs`) is a thin layer over this library: it parses
//! the command line (`src/cli.rs`), converts it into the settings types
//! defined here, and calls one function per subcommand.

pub mod app;
pub mod archive;
pub mod build;
pub mod builder;
pub mod bundle;
pub mod cancel;
pub mod catalog;
pub mod elf;
pub mod engine;
pub mod error;
pub mod glibc;
pub mod json;
pub mod manifest;
pub mod oci;
pub mod paths;
pub mod plan;
pub mod progress;
pub mod provenance;
pub mod purl;
pub mod recipe;
pub mod sbom;
pub mod shell;
pub mod term;
pub mod verify;

pub use error::{Error, Outcome, Result};

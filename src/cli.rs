//! Command-line types (clap derive) and their conversion into library settings.
//! Nothing here does work: `main.rs` dispatches each subcommand to the library.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Self-contained, relocatable Python application bundles for any Linux newer
/// than a chosen glibc baseline.
#[derive(Debug, Parser)]
#[command(name = "hermetic", version, about)]
pub struct Cli {
    /// More output: -v streams container output, -vv adds debug logs.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(flatten)]
    pub engine: EngineArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// How to reach the container engine.
#[derive(Debug, Args)]
pub struct EngineArgs {
    /// Engine socket or URL (unix:///path, tcp://host:port); overrides
    /// DOCKER_HOST and CONTAINER_HOST.
    #[arg(long, global = true, value_name = "SOCKET")]
    pub engine_socket: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Audit every ELF file in a directory or archive against a glibc baseline.
    Audit(AuditArgs),
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Directory or archive (.tar, .tar.gz) to audit.
    pub path: PathBuf,
    /// glibc baseline, e.g. 2.28.
    #[arg(long)]
    pub glibc: String,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

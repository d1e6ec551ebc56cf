//! Command-line types (clap derive) and their conversion into library
//! settings. Nothing here does work: `main.rs` hands each subcommand to one
//! library call. Precedence is CLI > environment > recipe > defaults.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use hermetic::app;
use hermetic::glibc::Glibc;

/// Self-contained, relocatable Python application bundles for any Linux newer
/// than a chosen glibc baseline.
#[derive(Debug, Parser)]
#[command(name = "hermetic", version, about)]
pub struct Cli {
    /// More output: -v streams container output, -vv adds debug logs.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Engine socket or URL (unix:///path, /path, tcp://host:port,
    /// ssh://user@host); overrides DOCKER_HOST and CONTAINER_HOST. A tcp://
    /// endpoint uses TLS when DOCKER_TLS_VERIFY is set, with ca.pem,
    /// cert.pem and key.pem from DOCKER_CERT_PATH (default ~/.docker).
    #[arg(long, global = true, value_name = "SOCKET")]
    pub engine_socket: Option<String>,

    /// User catalog of builders pinned by digest, laid over the shipped one
    /// (default: $HERMETIC_CATALOG, else $HERMETIC_HOME/catalog.toml if present).
    #[arg(long, global = true, value_name = "FILE")]
    pub catalog: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a relocatable bundle from a recipe, one per glibc baseline.
    Build(BuildArgs),
    /// Audit every ELF file in a directory or archive against a glibc
    /// baseline's policy (exit 1 when it does not comply).
    Audit(AuditArgs),
    /// Print or write the CycloneDX SBOM of a bundle (directory or archive).
    Sbom(SbomArgs),
    /// Rebuild from a build record and prove the outputs identical, or
    /// re-hash a release directory (--checksums).
    Verify(VerifyArgs),
    /// Build a reproducible OCI runtime image from a bundle (no Dockerfile).
    Image(ImageArgs),
    /// Push an OCI image layout to a registry (with its SBOM attached).
    Push(PushArgs),
    /// Builder images: list the catalog, build local builders and bases.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Run a command inside the pinned builder for a baseline (offline and
    /// without capabilities unless --network is given).
    Exec(ExecArgs),
    /// Remove containers hermetic left behind (e.g. after kill -9).
    Gc(GcArgs),
}

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Every baseline's builder and every runtime base, and whether present.
    List {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Make a local builder (from Debian's mirror) or a runtime base image.
    Build(ImagesBuildArgs),
    /// Load a builder carried in as an archive (OCI layout, e.g. from `skopeo
    /// copy --preserve-digests docker://… oci-archive:…`, or `docker save`),
    /// after checking it is an image the catalog pins.
    Load {
        /// The archive (.tar, optionally gzip or zstd).
        archive: PathBuf,
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ImagesBuildArgs {
    /// Baseline(s) of the local builder(s) to make, e.g. 2.31 or 2.31,2.36.
    #[arg(long, value_delimiter = ',', required_unless_present = "base")]
    pub glibc: Vec<Glibc>,
    /// Runtime base(s) to make, by Debian suite (e.g. trixie).
    #[arg(long, value_delimiter = ',')]
    pub base: Vec<String>,
    /// Rebuild even when a cached image matches the inputs.
    #[arg(long)]
    pub force: bool,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Baseline whose builder to use.
    #[arg(long)]
    pub glibc: Glibc,
    #[command(flatten)]
    pub builder: BuilderChoiceArgs,
    /// Allow network access (and hand in the host's CA bundle).
    #[arg(long)]
    pub network: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The recipe (default: ./hermetic.toml).
    #[arg(long, short = 'r', value_name = "FILE")]
    pub recipe: Option<PathBuf>,
    /// glibc baseline(s), e.g. 2.31 or 2.31,2.36 (default: the recipe's).
    #[arg(long, value_delimiter = ',', env = "HERMETIC_GLIBC")]
    pub glibc: Vec<Glibc>,
    /// Output directory.
    #[arg(long, default_value = "dist", env = "HERMETIC_OUT")]
    pub out: PathBuf,
    #[command(flatten)]
    pub builder: BuilderChoiceArgs,
    /// Runtime image (Debian suite) to smoke-test on (default: the newest).
    #[arg(long, value_name = "SUITE")]
    pub smoke_on: Option<String>,
    /// Print the plan and stop.
    #[arg(long)]
    pub plan: bool,
    /// Build even when cached outputs match every input.
    #[arg(long)]
    pub rebuild: bool,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Directory or archive (.tar, .tar.gz, .tar.zst) to audit.
    pub path: PathBuf,
    /// glibc baseline, e.g. 2.28.
    #[arg(long)]
    pub glibc: Glibc,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SbomArgs {
    /// Bundle directory (`<name>/`) or archive (`.tar.gz`, `.tar.zst`).
    pub path: PathBuf,
    /// Write to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The build record (`<…>.build.json`) to rebuild from.
    #[arg(required_unless_present = "checksums", conflicts_with = "checksums")]
    pub record: Option<PathBuf>,
    /// Re-hash the artifacts in this directory against SHA256SUMS and the
    /// build records there, without rebuilding.
    #[arg(long, value_name = "DIR")]
    pub checksums: Option<PathBuf>,
    /// The recipe, when not at the path the record names.
    #[arg(long, value_name = "FILE")]
    pub recipe: Option<PathBuf>,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Bundle directory or the archive written by `hermetic build`.
    pub bundle: PathBuf,
    /// Runtime base (Debian suite; default: the newest in the catalog).
    #[arg(long, value_name = "SUITE")]
    pub base: Option<String>,
    /// Write the image as an OCI image layout in this directory.
    #[arg(long, value_name = "DIR")]
    pub oci_layout: Option<PathBuf>,
    /// Load the image into the local engine.
    #[arg(long)]
    pub load: bool,
    /// Push the image to this reference (registry/name:tag).
    #[arg(long, value_name = "REF")]
    pub push: Option<String>,
    /// Tag for the layout and `--load` (default: the bundle's version).
    #[arg(long)]
    pub tag: Option<String>,
    /// `org.opencontainers.image.revision` (e.g. a git commit).
    #[arg(long)]
    pub revision: Option<String>,
    /// `org.opencontainers.image.source` (e.g. a repository URL).
    #[arg(long)]
    pub source: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// OCI image layout directory (from `hermetic image --oci-layout`).
    pub layout: PathBuf,
    /// Where to push (registry/name:tag).
    pub reference: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Registry access, shared by `image --push` and `push`.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Registry user (default: ~/.docker/config.json or anonymous).
    #[arg(long)]
    pub username: Option<String>,
    /// Read the password from the first line of stdin.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
    /// Use plain http (loopback registries use it anyway).
    #[arg(long)]
    pub insecure: bool,
}

impl RegistryArgs {
    /// The push target for `reference`.
    pub fn target(&self, reference: String) -> hermetic::Result<hermetic::oci::PushTarget> {
        let password = if self.password_stdin {
            Some(app::read_password_stdin()?)
        } else {
            None
        };
        Ok(hermetic::oci::PushTarget {
            username: self.username.clone(),
            password,
            insecure: self.insecure,
            ..hermetic::oci::PushTarget::new(reference)
        })
    }
}

impl ImageArgs {
    /// Library settings for `hermetic image`.
    pub fn settings(self) -> hermetic::Result<hermetic::oci::ImageSettings> {
        let push = self
            .push
            .clone()
            .map(|r| self.registry.target(r))
            .transpose()?;
        Ok(hermetic::oci::ImageSettings {
            base: self.base,
            oci_layout: self.oci_layout,
            load: self.load,
            push,
            tag: self.tag,
            revision: self.revision,
            source: self.source,
            ..hermetic::oci::ImageSettings::new(self.bundle)
        })
    }
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Also remove containers of hermetic processes still running here.
    #[arg(long)]
    pub all: bool,
    /// Also remove the derived builder images (builder + a recipe's system
    /// packages); builds and `verify` remake them from recorded versions.
    #[arg(long)]
    pub images: bool,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

impl Cli {
    /// Settings shared by every command.
    pub fn global(&self) -> app::GlobalSettings {
        app::GlobalSettings {
            engine_socket: self.engine_socket.clone(),
            verbose: self.verbose,
        }
    }
}

/// Which builder `build` and `exec` run in, when not the catalog's default.
#[derive(Debug, Args)]
pub struct BuilderChoiceArgs {
    /// Use this builder image instead of the catalog's (name@sha256:… or
    /// image ID); it is still checked against the baseline.
    #[arg(long, value_name = "IMAGE")]
    pub builder_image: Option<String>,
    /// Use only the catalog's upstream (pinned, pulled) or only its local
    /// builder; default: upstream, and the local one when no registry answers.
    #[arg(
        long,
        value_enum,
        value_name = "SOURCE",
        env = "HERMETIC_BUILDER_SOURCE",
        conflicts_with = "builder_image"
    )]
    pub builder_source: Option<BuilderSourceArg>,
}

/// `--builder-source`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BuilderSourceArg {
    /// The catalog's pinned upstream image (manylinux), pulled by digest.
    Upstream,
    /// The catalog's local builder, made on this machine.
    Local,
}

impl From<BuilderSourceArg> for hermetic::catalog::Source {
    fn from(a: BuilderSourceArg) -> Self {
        match a {
            BuilderSourceArg::Upstream => hermetic::catalog::Source::Upstream,
            BuilderSourceArg::Local => hermetic::catalog::Source::Local,
        }
    }
}

impl From<ImagesBuildArgs> for app::ImagesBuildSettings {
    fn from(a: ImagesBuildArgs) -> Self {
        app::ImagesBuildSettings {
            glibc: a.glibc,
            bases: a.base,
            force: a.force,
            json: a.json,
        }
    }
}

impl From<ExecArgs> for app::ExecSettings {
    fn from(a: ExecArgs) -> Self {
        app::ExecSettings {
            glibc: a.glibc,
            builder_image: a.builder.builder_image,
            builder_source: a.builder.builder_source.map(Into::into),
            network: a.network,
            command: a.command,
        }
    }
}

impl From<BuildArgs> for app::BuildCommandSettings {
    fn from(a: BuildArgs) -> Self {
        app::BuildCommandSettings {
            recipe: a.recipe,
            settings: hermetic::plan::BuildSettings {
                glibc: a.glibc,
                out_dir: a.out,
                builder_image: a.builder.builder_image,
                builder_source: a.builder.builder_source.map(Into::into),
                smoke_suite: a.smoke_on,
                rebuild: a.rebuild,
                replay: None,
            },
            plan_only: a.plan,
            json: a.json,
        }
    }
}

impl From<VerifyArgs> for app::VerifySettings {
    fn from(a: VerifyArgs) -> Self {
        app::VerifySettings {
            record: a.record,
            checksums: a.checksums,
            recipe: a.recipe,
            json: a.json,
        }
    }
}

//! `hermetic` binary: parse arguments, set up tracing, start tokio, dispatch
//! one library call per subcommand and map the result to an exit code.
//! SIGINT/SIGTERM, a closed stdout or stderr and a panic all remove the
//! containers this process created before exiting ([`app::run_guarded`]).

mod cli;

use std::process::ExitCode;

use clap::Parser;
use hermetic::term::escape_output;
use hermetic::{Error, Outcome, app};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if let Some(path) = &cli.catalog {
        hermetic::catalog::use_user_catalog(path.clone());
    }
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(Error::Io(e)),
    };
    let result = runtime.block_on(app::run_guarded(dispatch(cli)));
    // Work abandoned by an early exit (a blocking scan, a stuck request)
    // must not hold the exit up.
    runtime.shutdown_background();
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::CheckFailed) => ExitCode::from(1),
        Err(e) => report(e),
    }
}

async fn dispatch(cli: cli::Cli) -> hermetic::Result<Outcome> {
    let global = cli.global();
    match cli.command {
        cli::Command::Build(args) => app::build(&global, args.into()).await,
        cli::Command::Verify(args) => app::verify(&global, args.into()).await,
        cli::Command::Image(args) => {
            let json = args.json;
            app::image(&global, args.settings()?, json).await
        }
        cli::Command::Push(args) => {
            let target = args.registry.target(args.reference)?;
            app::push(
                hermetic::oci::PushSettings {
                    layout: args.layout,
                    target,
                },
                args.json,
            )
            .await
        }
        cli::Command::Sbom(args) => app::sbom(args.path, args.output).await,
        cli::Command::Audit(args) => app::audit(args.path, args.glibc, args.json).await,
        cli::Command::Images(cli::ImagesCommand::List { json }) => {
            app::images_list(&global, json).await
        }
        cli::Command::Images(cli::ImagesCommand::Build(args)) => {
            app::images_build(&global, args.into()).await
        }
        cli::Command::Images(cli::ImagesCommand::Load { archive, json }) => {
            app::images_load(&global, &archive, json).await
        }
        cli::Command::Exec(args) => app::exec(&global, args.into()).await,
        cli::Command::Gc(args) => app::gc(&global, args.all, args.images, args.json).await,
    }
}

fn report(err: Error) -> ExitCode {
    // A closed stream is not worth a message (nobody reads it); and an error
    // that cannot be printed is still reported by the exit code.
    if !matches!(err, Error::OutputClosed { .. }) {
        let _ = hermetic::errln!("error: {}", escape_output(&err.to_string()));
        if let Some(help) = err.help() {
            let _ = hermetic::errln!("help: {}", escape_output(&help));
        }
    }
    ExitCode::from(err.exit_code())
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colour only on a terminal (and not under NO_COLOR): a log written to
    // a file or a pipe carries no ANSI codes. A closed stderr ends the run
    // through `term::StderrLog`, not with tracing's own complaint on it.
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(hermetic::term::StderrLog)
        .with_ansi(ansi)
        .log_internal_errors(false)
        .with_target(false)
        .init();
}

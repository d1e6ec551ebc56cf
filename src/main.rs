//! `hermetic` binary: parse arguments, set up tracing, start tokio, dispatch
//! one library call per subcommand and map the result to an exit code.
//! SIGINT/SIGTERM remove the containers this process created before exiting.

mod cli;

use std::process::ExitCode;

use clap::Parser;
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
    let result = runtime.block_on(async {
        tokio::select! {
            result = dispatch(cli) => result,
            signal = app::shutdown_signal() => Err(app::interrupted(signal).await),
        }
    });
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
        cli::Command::Exec(args) => app::exec(&global, args.into()).await,
        cli::Command::Gc(args) => app::gc(&global, args.all, args.images, args.json).await,
    }
}

fn report(err: Error) -> ExitCode {
    eprintln!("error: {err}");
    if let Some(help) = err.help() {
        eprintln!("help: {help}");
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
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

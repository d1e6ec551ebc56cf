//! `hermetic` binary: parse arguments, set up tracing, start tokio, dispatch
//! one library call per subcommand and map the result to an exit code.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use hermetic::{Error, Outcome};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(Error::Io(e)),
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::CheckFailed) => ExitCode::from(1),
        Err(e) => report(e),
    }
}

async fn dispatch(cli: cli::Cli) -> hermetic::Result<Outcome> {
    match cli.command {
        cli::Command::Audit(_args) => Err(Error::Usage("audit is not implemented yet".into())),
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

//! Stand-in for `hermetic image` / `hermetic push` until the CLI is wired:
//! calls the library exactly as `main.rs` will and prints the JSON report.
//!
//! ```text
//! cargo run --example oci -- image <bundle> [--base SUITE] [--oci-layout DIR] [--load] [--push REF] [--insecure]
//! cargo run --example oci -- push <layout> <ref> [--username U --password-stdin] [--insecure]
//! ```

use std::io::Read;
use std::process::ExitCode;

use hermetic::oci::{self, ImageSettings, PushSettings, PushTarget, Secret};

fn usage() -> ExitCode {
    eprintln!(
        "usage: oci image <bundle> [--base S] [--oci-layout DIR] [--load] [--push REF] [--insecure]\n       oci push <layout> <ref> [--username U --password-stdin] [--insecure]"
    );
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let positional: Vec<&String> = {
        let mut out = Vec::new();
        let mut skip = false;
        for a in &args {
            if skip {
                skip = false;
            } else if matches!(
                a.as_str(),
                "--base" | "--oci-layout" | "--push" | "--username"
            ) {
                skip = true;
            } else if !a.starts_with("--") {
                out.push(a);
            }
        }
        out
    };
    let password = if flag("--password-stdin") {
        let mut s = String::new();
        if std::io::stdin().read_to_string(&mut s).is_err() {
            return usage();
        }
        Some(Secret::new(s.trim_end_matches(['\n', '\r'])))
    } else {
        None
    };
    let target = |reference: &str| PushTarget {
        username: value("--username"),
        password: password.clone(),
        insecure: flag("--insecure"),
        ..PushTarget::new(reference)
    };
    let result = match positional.as_slice() {
        [cmd, bundle] if cmd.as_str() == "image" => {
            let settings = ImageSettings {
                base: value("--base"),
                oci_layout: value("--oci-layout").map(Into::into),
                load: flag("--load"),
                push: value("--push").map(|r| target(&r)),
                ..ImageSettings::new(bundle.as_str())
            };
            let engine = if settings.load {
                match hermetic::engine::connect(&Default::default()).await {
                    Ok(e) => Some(e),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                None
            };
            oci::image(&settings, engine.as_ref())
                .await
                .map(|r| serde_json::to_string_pretty(&r).unwrap_or_default())
        }
        [cmd, layout, reference] if cmd.as_str() == "push" => oci::push(&PushSettings {
            layout: layout.into(),
            target: target(reference),
        })
        .await
        .map(|r| serde_json::to_string_pretty(&r).unwrap_or_default()),
        _ => return usage(),
    };
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(help) = e.help() {
                eprintln!("help: {help}");
            }
            ExitCode::from(2)
        }
    }
}

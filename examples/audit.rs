//! Stand-in for `hermetic audit` until the CLI is wired:
//! `cargo run --release --example audit -- <dir|archive> <glibc> [--json]`.
//! Exit codes follow the CLI's: 0 compliant, 1 findings, 2 error.

use std::path::PathBuf;
use std::process::ExitCode;

use hermetic::elf::audit::audit_path;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [path, glibc] = positional.as_slice() else {
        eprintln!("usage: audit <dir|archive> <glibc> [--json]");
        return ExitCode::from(2);
    };
    match audit_path(&PathBuf::from(path), glibc) {
        Ok(report) => {
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                print!("{}", report.render_text());
            }
            if report.compliant {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

//! Run the build-path scan (the relocate step's proof that no file refers to
//! a build path) over a directory and print the hits.
//!
//! `cargo run --release --example scan -- <dir>`
//!
//! The build paths are the ones a build in a manylinux builder would use
//! (`/hermetic/out/app`, `/opt/python/cp311-cp311`, `/hermetic/src`);
//! `bench/memory.sh` measures its peak memory over a huge sparse file.

// An example is a demonstration run by hand: it may stop on a bad
// input with a panic message rather than a typed error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::ExitCode;

use hermetic::bundle::relocate::{BuildPaths, scan};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir] = args.as_slice() else {
        eprintln!("usage: scan <dir>");
        return ExitCode::from(2);
    };
    let paths = BuildPaths {
        bundle_dir: "/hermetic/out/app".into(),
        python_prefixes: vec!["/opt/python/cp311-cp311".into()],
        work_dirs: vec!["/hermetic/src".into()],
    };
    match scan(Path::new(dir), &paths) {
        Ok(hits) => {
            for hit in &hits {
                println!("{}: {}", hit.path, hit.needle);
            }
            println!("{} files refer to build paths", hits.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

//! Archive a directory with hermetic's deterministic writer and print what
//! the build record would hold.
//!
//! `cargo run --release --example archive -- <dir> <out.tar[.gz|.zst]>`
//!
//! The output is plain for `.tar`, zstd (level 10, hermetic's default) for
//! `.tar.zst`, else gzip. The epoch comes from
//! `SOURCE_DATE_EPOCH` (else 0, so the example never depends on git); the
//! archive prefix is the directory's name.

// An example is a demonstration run by hand: it may stop on a bad
// input with a panic message rather than a typed error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::ExitCode;

use hermetic::archive::{ArchiveOptions, Compression, write_archive_atomically};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, out] = args.as_slice() else {
        eprintln!("usage: archive <dir> <out.tar.gz | out.tar.zst | out.tar>");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    let out = PathBuf::from(out);
    let name = out.to_string_lossy();
    let compression = if name.ends_with(".tar") {
        Compression::None
    } else if name.ends_with(".tar.zst") {
        Compression::Zstd {
            level: hermetic::archive::ZSTD_DEFAULT_LEVEL,
        }
    } else {
        Compression::Gzip
    };
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => match v.parse() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("error: invalid SOURCE_DATE_EPOCH `{v}`");
                return ExitCode::from(2);
            }
        },
        Err(_) => 0,
    };
    let prefix = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "root".into());
    let opts = ArchiveOptions {
        source_date_epoch,
        compression,
    };
    match write_archive_atomically(&dir, &prefix, &out, &opts) {
        Ok(s) => {
            println!("sha256     {}", s.sha256);
            println!("size       {}", s.size);
            println!("tar_sha256 {}", s.tar_sha256);
            println!("tar_size   {}", s.tar_size);
            println!("files      {}", s.files);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

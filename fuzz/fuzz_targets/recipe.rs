//! Fuzzes the recipe reader: `Recipe::parse` on the text and `Recipe::load`
//! (parse, validate, resolve paths, read the requirement files it names) on
//! a `hermetic.toml` written into a directory that also holds the files the
//! shipped recipes refer to (`requirements.txt`, `build-requirements.txt`,
//! `pyproject.toml`, `src/`), so that validation gets past path checks.
//!
//! Properties: no panic; every error renders (errors point at a line and
//! column of the text, which must not slice it wrongly); text that does not
//! parse does not load; a loaded recipe serializes (`build --plan --json`).
//! Seeds: `fuzz/seeds/recipe` (the shipped recipes).

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hermetic::recipe::Recipe;
use libfuzzer_sys::fuzz_target;

const REQUIREMENTS: &str = "\
qrcode==8.2 --hash=sha256:35c3f2a4172b33136ab9f6b3ef1c00260dd2f66f858f24d88418a015f446506c
";

/// One directory for the whole run; only `hermetic.toml` changes.
fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory").keep();
        std::fs::write(dir.join("requirements.txt"), REQUIREMENTS).expect("write");
        std::fs::write(dir.join("build-requirements.txt"), REQUIREMENTS).expect("write");
        std::fs::write(
            dir.join("pyproject.toml"),
            "[project]\nname = \"demo\"\nversion = \"1.0\"\n",
        )
        .expect("write");
        std::fs::create_dir_all(dir.join("src/demo")).expect("mkdir");
        std::fs::write(dir.join("src/demo/__init__.py"), "").expect("write");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let path = dir().join("hermetic.toml");
    let parsed = std::str::from_utf8(data)
        .ok()
        .map(|text| Recipe::parse(text, &path));
    if let Some(Err(e)) = &parsed {
        let _ = e.to_string();
    }
    std::fs::write(&path, data).expect("write the recipe");
    match Recipe::load(&path) {
        Ok(loaded) => {
            assert!(
                matches!(parsed, Some(Ok(_))),
                "a recipe that does not parse loaded"
            );
            serde_json::to_vec(&loaded).expect("a loaded recipe serializes");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});

//! Shared helpers for integration tests that need the real container engine.
//!
//! Outside CI a test that finds no engine skips with a loud message; under
//! `CI=true` a missing engine is a failure. Images the tests need are made
//! through hermetic itself (cached by their inputs hash, so this is cheap
//! once `.ci/run` or an earlier test made them).

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use hermetic::catalog::{self, Glibc};
use hermetic::engine::{self, ConnectOptions, Engine};
use tokio::sync::Mutex;

/// Serialises image builds across the tests of one binary.
static IMAGE_LOCK: OnceLock<Mutex<()>> = OnceLock::new();

/// Connects to the engine, or returns `None` (after a loud message) when
/// there is none and we are not in CI.
pub async fn engine_or_skip(test: &str) -> Option<Engine> {
    match engine::connect(&ConnectOptions::default()).await {
        Ok(engine) => Some(engine),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: CI=true but no container engine: {e}")
        }
        Err(e) => {
            eprintln!("\n!!!!! SKIPPING {test}: no container engine reachable ({e}) !!!!!\n");
            None
        }
    }
}

/// The image ID of a runtime base (made if missing).
pub async fn base_image(engine: &Engine, suite: &str) -> String {
    let _guard = IMAGE_LOCK.get_or_init(|| Mutex::new(())).lock().await;
    catalog::ensure_base(engine, suite, false)
        .await
        .expect("make base image")
        .image_id
}

/// The image ID of the local builder for a baseline (made if missing).
pub async fn builder_image(engine: &Engine, glibc: &str) -> String {
    let _guard = IMAGE_LOCK.get_or_init(|| Mutex::new(())).lock().await;
    let glibc: Glibc = glibc.parse().unwrap();
    catalog::build_local_builder(engine, glibc, false)
        .await
        .expect("make builder image")
        .image_id
}

/// Path of the built `hermetic` binary.
pub fn hermetic_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hermetic"))
}

/// Runs CycloneDX's own JSON-schema validation (cyclonedx-python-lib) on a
/// file. `Ok(false)` when the validator is not installed outside CI.
pub fn validate_cdx(test: &str, file: &std::path::Path) -> Result<bool, String> {
    let python = std::env::var("HERMETIC_CDX_VALIDATOR")
        .unwrap_or_else(|_| "/opt/hermetic-validators/bin/python".into());
    if !std::path::Path::new(&python).exists() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "{test}: CI=true but no CycloneDX validator at {python} (scripts/setup installs it)"
            );
        }
        eprintln!("\n!!!!! SKIPPING schema validation in {test}: no validator at {python} !!!!!\n");
        return Ok(false);
    }
    let spec = include_str!("../../sbom/spec-version").trim();
    let out = std::process::Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/validate_cdx.py"
        ))
        .arg(spec)
        .arg(file)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(true)
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

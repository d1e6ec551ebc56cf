//! Shared helpers for integration tests that need the real container engine.
//!
//! Outside CI a test that finds no engine skips with a loud message; under
//! `CI=true` a missing engine is a failure. Images the tests need are made
//! through hermetic itself (cached by their inputs hash, so this is cheap
//! once `.ci/run` or an earlier test made them).

#![allow(dead_code)]
// Tests fail by panicking: unwrap, expect and panic! are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::OnceLock;

use hermetic::builder;
use hermetic::engine::{self, ConnectOptions, ContainerSpec, Engine, EngineKind, Network};
use hermetic::glibc::Glibc;
use tokio::sync::Mutex;

/// Serialises image builds across the tests of one binary.
static IMAGE_LOCK: OnceLock<Mutex<()>> = OnceLock::new();

/// The repository's root (recipes, fixtures).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A finished command's stdout and stderr, for assertion messages.
pub fn text(out: &std::process::Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Waits until a container labelled with `build_id` exists on `engine`;
/// fails the test after `within`.
pub async fn wait_for_labelled(engine: &Engine, build_id: &str, within: std::time::Duration) {
    let deadline = std::time::Instant::now() + within;
    while engine
        .labelled_containers(Some(build_id))
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no container labelled {build_id} appeared within {within:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

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

/// Podman's Docker-API socket (`scripts/podman-service`), as a URL.
pub fn podman_socket() -> String {
    let path = std::env::var("HERMETIC_PODMAN_SOCKET")
        .unwrap_or_else(|_| "/run/podman/podman.sock".to_string());
    format!("unix://{path}")
}

/// Connects to Podman's service, or returns `None` (after a loud message)
/// when there is none and we are not in CI, where `.ci/run` starts it.
pub async fn podman_or_skip(test: &str) -> Option<Engine> {
    let options = ConnectOptions {
        socket: Some(podman_socket()),
        ..Default::default()
    };
    match engine::connect(&options).await {
        Ok(engine) => {
            assert_eq!(
                engine.kind(),
                EngineKind::Podman,
                "{} is not Podman",
                podman_socket()
            );
            Some(engine)
        }
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "{test}: CI=true but no Podman service on {}: {e}",
                podman_socket()
            )
        }
        Err(e) => {
            eprintln!(
                "\n!!!!! SKIPPING {test}: no Podman service on {} ({e}); \
                 `scripts/setup --podman` starts one !!!!!\n",
                podman_socket()
            );
            None
        }
    }
}

/// A test's container: offline and hardened, labelled with `build_id`.
pub fn test_container(image: &str, build_id: &str) -> ContainerSpec {
    ContainerSpec {
        image: image.to_string(),
        build_id: build_id.to_string(),
        role: "test".into(),
        network: Network::None,
        hardened: true,
        env: vec![],
        user: None,
    }
}

/// Writes an image build context holding only `dockerfile` (as
/// `Dockerfile`) to `path`.
pub fn dockerfile_context(path: &std::path::Path, dockerfile: &str) {
    let mut tar = tar::Builder::new(fs_err::File::create(path).unwrap());
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
        .unwrap();
    tar.finish().unwrap();
}

/// The image ID of a runtime base (made if missing).
pub async fn base_image(engine: &Engine, suite: &str) -> String {
    let _guard = IMAGE_LOCK.get_or_init(|| Mutex::new(())).lock().await;
    builder::ensure_base(engine, suite, false)
        .await
        .expect("make base image")
        .image_id
}

/// The image ID of the local builder for a baseline (made if missing).
pub async fn builder_image(engine: &Engine, glibc: &str) -> String {
    let _guard = IMAGE_LOCK.get_or_init(|| Mutex::new(())).lock().await;
    let glibc: Glibc = glibc.parse().unwrap();
    builder::build_local_builder(engine, glibc, false)
        .await
        .expect("make builder image")
        .image_id
}

/// Files under `top` holding any of `everywhere`, or (outside ELF files,
/// which may keep a compiled-in default prefix) any of `outside_elf`; each
/// hit as `relative/path: needle`.
pub fn find_needles(
    top: &std::path::Path,
    everywhere: &[&str],
    outside_elf: &[&str],
) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in walkdir::WalkDir::new(top) {
        let entry = entry.unwrap();
        if !entry.file_type().is_file() {
            continue;
        }
        let data = fs_err::read(entry.path()).unwrap();
        let elf = data.starts_with(b"\x7fELF");
        let rel = entry
            .path()
            .strip_prefix(top)
            .unwrap()
            .display()
            .to_string();
        let extra = if elf { &[][..] } else { outside_elf };
        for needle in everywhere.iter().chain(extra) {
            if data.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                hits.push(format!("{rel}: {needle}"));
            }
        }
    }
    hits
}

/// Path of the built `hermetic` binary.
pub fn hermetic_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hermetic"))
}

/// Runs CycloneDX's own JSON-schema validation (cyclonedx-python-lib) on a
/// file. `Ok(false)` when the validator is not installed outside CI.
pub fn validate_cdx(test: &str, file: &std::path::Path) -> Result<bool, String> {
    let spec = include_str!("../../sbom/spec-version").trim();
    run_validator(test, "validate_cdx.py", &[spec.as_ref(), file.as_os_str()])
}

/// Checks an in-toto statement with the in-toto project's own bindings
/// (in-toto-attestation) and SLSA Provenance v1's required fields.
/// `Ok(false)` when the validator is not installed outside CI.
pub fn validate_intoto(test: &str, file: &std::path::Path) -> Result<bool, String> {
    run_validator(test, "validate_intoto.py", &[file.as_os_str()])
}

/// Runs `tests/<script>` with the validators' Python (scripts/setup makes
/// it); under `CI=true` a missing validator is a failure.
fn run_validator(test: &str, script: &str, args: &[&std::ffi::OsStr]) -> Result<bool, String> {
    let python = std::env::var("HERMETIC_VALIDATORS_PYTHON")
        .unwrap_or_else(|_| "/opt/hermetic-validators/bin/python".into());
    if !std::path::Path::new(&python).exists() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: CI=true but no validators at {python} (scripts/setup installs them)");
        }
        eprintln!("\n!!!!! SKIPPING validation in {test}: no validators at {python} !!!!!\n");
        return Ok(false);
    }
    let out = std::process::Command::new(&python)
        .arg(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests")
                .join(script),
        )
        .args(args)
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

/// Every file of two output directories, name by name, byte for byte
/// (`what_a` and `what_b` name where each came from, for the message).
pub fn assert_same_outputs(a: &std::path::Path, what_a: &str, b: &std::path::Path, what_b: &str) {
    let names = |dir: &std::path::Path| {
        let mut v: Vec<String> = fs_err::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(a),
        names(b),
        "{what_a} and {what_b} wrote different files"
    );
    for name in names(a) {
        assert!(
            fs_err::read(a.join(&name)).unwrap() == fs_err::read(b.join(&name)).unwrap(),
            "{name} differs between {what_a} ({}) and {what_b} ({})",
            a.display(),
            b.display()
        );
    }
}

/// An image of the test's own (one small file) under two tags: removing it
/// by ID is refused (`Ok(false)`) rather than an error, on every engine
/// (Docker says 409, Podman 4.3 says 500), and by each tag it goes.
pub async fn assert_multi_tag_removal_is_refused(engine: &Engine) {
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("rootfs.tar");
    {
        let mut tar = tar::Builder::new(fs_err::File::create(&tarball).unwrap());
        let mut header = tar::Header::new_gnu();
        header.set_size(3);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, "hello", &b"hi\n"[..]).unwrap();
        tar.finish().unwrap();
    }
    let kind = engine.kind();
    let repo = kind.local_image_name(&format!("hermetic-test/multi-tag-{}", std::process::id()));
    let [a, b] = [format!("{repo}:a"), format!("{repo}:b")];
    let id = engine.import_rootfs(&tarball, &a, &[]).await.unwrap();
    engine.tag_image(&id, &b).await.unwrap();
    let refused = engine.remove_unused_image(&id).await;
    let still_there = engine.inspect_image(&id).await.unwrap().is_some();
    // Clean up before asserting, by name (which both engines allow).
    for tag in [&a, &b] {
        engine.remove_unused_image(tag).await.unwrap();
    }
    assert!(
        matches!(refused, Ok(false)),
        "removing a two-tag image by ID on {kind}: {refused:?}"
    );
    assert!(still_there, "the refused removal removed {id} on {kind}");
    assert!(engine.inspect_image(&id).await.unwrap().is_none());
}

//! A remote engine over TLS (issue 16): a second dockerd on this machine
//! that answers only TLS with client certificates on a loopback port, with
//! an image store of its own (`scripts/tls-engine`, which makes the
//! certificates). hermetic reaches it the way Docker's clients do, through
//! `DOCKER_HOST=tcp://…`, `DOCKER_TLS_VERIFY=1` and `DOCKER_CERT_PATH`, and
//! must build there exactly what it builds on the local engine: every file
//! crosses as a tar stream over TCP+TLS, nothing is shared but the API.
//!
//! The builder is not compiled on the TLS engine (about 10 minutes of
//! CPython on 2 cores): it is copied from the local engine with save/load
//! through the engine APIs, which keeps its image ID, and hermetic adopts it
//! there by its inputs-hash tag, as it would any image it made. The same
//! goes for the trixie runtime base the smoke test runs in.
//!
//! Outside CI, a TLS engine that cannot be started (not root, no dockerd)
//! is a loud skip; under `CI=true` (`.ci/run` starts it through
//! `scripts/setup`) it is a failure.

// Tests fail by panicking: unwrap, expect and panic! are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{repo, text};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use hermetic::engine::{self, ConnectOptions, Engine, TlsEnv};

/// What `scripts/tls-engine env` prints: the engine's URL and client files.
struct TlsEngine {
    host: String,
    cert_path: PathBuf,
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Starts the TLS engine (or finds it running) and reads its client
/// settings; `None` after a loud message when it cannot be had outside CI.
fn tls_engine_or_skip(test: &str) -> Option<TlsEngine> {
    let script = repo().join("scripts/tls-engine");
    let start = Command::new(&script).arg("start").output();
    let failed = match &start {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(text(out)),
        Err(e) => Some(e.to_string()),
    };
    if let Some(why) = failed {
        if in_ci() {
            panic!("{test}: CI=true but the TLS engine did not start:\n{why}");
        }
        eprintln!(
            "\n!!!!! SKIPPING {test}: `scripts/tls-engine start` failed (it needs root and \
             dockerd) !!!!!\n{why}\n"
        );
        return None;
    }
    let env = Command::new(&script).arg("env").output().unwrap();
    assert!(env.status.success(), "{}", text(&env));
    let env = String::from_utf8_lossy(&env.stdout).into_owned();
    let value = |name: &str| {
        env.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in `scripts/tls-engine env`: {env}"))
            .to_string()
    };
    Some(TlsEngine {
        host: value("DOCKER_HOST"),
        cert_path: PathBuf::from(value("DOCKER_CERT_PATH")),
    })
}

impl TlsEngine {
    /// hermetic's library connected to it, with the TLS settings given
    /// explicitly (no process-wide environment changes in a test).
    async fn connect(&self) -> Engine {
        engine::connect(&ConnectOptions {
            socket: Some(self.host.clone()),
            tls: Some(TlsEnv {
                verify: true,
                cert_path: Some(self.cert_path.clone()),
                ..Default::default()
            }),
        })
        .await
        .unwrap_or_else(|e| panic!("connect to the TLS engine at {}: {e}", self.host))
    }

    /// The hermetic CLI pointed at it through Docker's variables, with
    /// `cert_path` as `DOCKER_CERT_PATH`.
    fn hermetic(&self, cert_path: &Path, args: &[&str]) -> Output {
        Command::new(common::hermetic_bin())
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", cert_path)
            .env_remove("CONTAINER_HOST")
            .env_remove("HERMETIC_CATALOG")
            .output()
            .expect("run hermetic")
    }
}

/// hermetic against the local engine (Docker's variables removed).
fn hermetic_local(args: &[&str]) -> Output {
    Command::new(common::hermetic_bin())
        .args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("CONTAINER_HOST")
        .env_remove("HERMETIC_CATALOG")
        .output()
        .expect("run hermetic")
}

/// Copies an image (by ID) from the local engine to the remote one under
/// its hermetic tag, unless it is there already; returns the seconds spent.
async fn copy_image(local: &Engine, remote: &Engine, id: &str, tag_prefix: &str) -> f64 {
    if remote.inspect_image(id).await.unwrap().is_some() {
        return 0.0;
    }
    let info = local.inspect_image(id).await.unwrap().unwrap();
    let tag = info
        .repo_tags
        .iter()
        .find(|t| t.starts_with(tag_prefix))
        .unwrap_or_else(|| panic!("{id} has no {tag_prefix}* tag: {:?}", info.repo_tags));
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("image.tar");
    let size = local.save_image(tag, &tar).await.unwrap();
    remote.load_image_archive(&tar).await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "copied {tag} ({} MB) from the local engine to the TLS engine in {seconds:.1} s",
        size / 1_000_000
    );
    let copied = remote.inspect_image(tag).await.unwrap().unwrap();
    assert_eq!(copied.id, id, "save/load changed the image ID of {tag}");
    seconds
}

fn build_args<'a>(recipe: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["build", "--recipe", recipe, "--glibc", "2.31", "--out", out];
    args.extend_from_slice(extra);
    args
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_through_a_tls_engine_gives_the_local_bytes() {
    let test = "a_build_through_a_tls_engine_gives_the_local_bytes";
    let Some(tls) = tls_engine_or_skip(test) else {
        return;
    };
    let Some(local) = common::engine_or_skip(test).await else {
        return;
    };
    let remote = tls.connect().await;
    let info = remote.info();
    assert!(info.tls, "{info:?}");
    assert_eq!(info.endpoint, tls.host, "{info:?}");

    // The builder the recipe needs at 2.31 and the smoke test's runtime,
    // made (or found) on the local engine, then copied across.
    let builder = common::builder_image(&local, "2.31").await;
    let trixie = common::base_image(&local, "trixie").await;
    copy_image(&local, &remote, &builder, "hermetic/builder:glibc2.31-").await;
    copy_image(&local, &remote, &trixie, "hermetic/base:trixie-").await;

    let recipe = repo().join("recipes/qr-cli/hermetic.toml");
    let recipe = recipe.to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let tls_out = work.path().join("tls");
    let tls_out_s = tls_out.to_str().unwrap();
    let started = Instant::now();
    let run = tls.hermetic(
        &tls.cert_path,
        &build_args(recipe, tls_out_s, &["--rebuild", "--json"]),
    );
    let tls_seconds = started.elapsed().as_secs_f64();
    assert!(run.status.success(), "build through TLS\n{}", text(&run));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(
        report["engine"]["endpoint"],
        tls.host.as_str(),
        "{report:#}"
    );
    assert_eq!(report["engine"]["tls"], true, "{report:#}");
    assert_eq!(report["targets"][0]["smoke"]["passed"], true, "{report:#}");

    // The text report says where and how it ran (a cached rerun: the same
    // inputs reuse the outputs, but the engine line is still printed).
    let again = tls.hermetic(&tls.cert_path, &build_args(recipe, tls_out_s, &[]));
    assert!(again.status.success(), "{}", text(&again));
    let stderr = String::from_utf8_lossy(&again.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("engine: "))
        .unwrap_or_else(|| panic!("no engine line\n{}", text(&again)));
    assert!(
        line.starts_with("engine: docker ") && line.ends_with(&format!("at {} (TLS)", tls.host)),
        "{line}"
    );

    let local_out = work.path().join("local");
    let started = Instant::now();
    let run = hermetic_local(&build_args(
        recipe,
        local_out.to_str().unwrap(),
        &["--rebuild", "--json"],
    ));
    let local_seconds = started.elapsed().as_secs_f64();
    assert!(run.status.success(), "local build\n{}", text(&run));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["engine"]["tls"], false, "{report:#}");
    eprintln!(
        "qr-cli --glibc 2.31: {tls_seconds:.1} s through the TLS engine at {}, \
         {local_seconds:.1} s on the local engine at {}",
        tls.host,
        report["engine"]["endpoint"].as_str().unwrap_or("?")
    );
    common::assert_same_outputs(&tls_out, "the TLS engine", &local_out, "the local engine");
}

#[test]
fn a_missing_cert_path_is_named_and_fails() {
    // The files are checked before anything is sent: no engine needed.
    let missing = tempfile::tempdir().unwrap().path().join("no-such-certs");
    let out = Command::new(common::hermetic_bin())
        .args(["images", "list"])
        .env("DOCKER_HOST", "tcp://127.0.0.1:23760")
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", &missing)
        .env_remove("CONTAINER_HOST")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ca = missing.join("ca.pem");
    assert!(
        stderr.contains(&format!("{}: no such file", ca.display())),
        "{}",
        text(&out)
    );
    assert!(stderr.contains("tcp://127.0.0.1:23760"), "{}", text(&out));
    assert!(stderr.contains("DOCKER_CERT_PATH"), "{}", text(&out));
}

#[test]
fn a_wrong_ca_or_client_certificate_is_a_tls_error() {
    let test = "a_wrong_ca_or_client_certificate_is_a_tls_error";
    let Some(tls) = tls_engine_or_skip(test) else {
        return;
    };
    // A CA that did not sign the engine's certificate, and a client
    // certificate the engine's CA did not sign.
    let dir = tempfile::tempdir().unwrap();
    let self_signed = |out: &Path| {
        let made = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=not the engine's CA", "-keyout"])
            .arg(out.join("key.pem"))
            .arg("-out")
            .arg(out.join("cert.pem"))
            .output()
            .unwrap();
        assert!(made.status.success(), "{}", text(&made));
    };
    let wrong_ca = dir.path().join("wrong-ca");
    let other = dir.path().join("other");
    let wrong_client = dir.path().join("wrong-client");
    for d in [&wrong_ca, &other, &wrong_client] {
        fs_err::create_dir_all(d).unwrap();
    }
    self_signed(&other);
    fs_err::copy(other.join("cert.pem"), wrong_ca.join("ca.pem")).unwrap();
    for f in ["cert.pem", "key.pem"] {
        fs_err::copy(tls.cert_path.join(f), wrong_ca.join(f)).unwrap();
    }
    self_signed(&wrong_client);
    fs_err::copy(tls.cert_path.join("ca.pem"), wrong_client.join("ca.pem")).unwrap();

    for (certs, expect) in [
        (&wrong_ca, "invalid peer certificate"),
        (&wrong_client, "received fatal alert"),
    ] {
        let out = tls.hermetic(certs, &["images", "list"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "{} over TLS: TLS handshake failed: {expect}",
                tls.host
            )),
            "{}",
            text(&out)
        );
    }
}

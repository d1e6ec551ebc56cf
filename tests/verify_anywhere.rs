//! Verify anywhere (issue 15): a release built with a local builder on
//! Docker is verified on a "machine" that never had that builder, on the
//! other engine: its builder and base images are removed from Podman,
//! `HERMETIC_HOME` is fresh (no lock, no rootfs tarballs, no caches), and
//! the source is a fresh clone of the project at another path, with stray
//! untracked files the record does not cover. `verify`
//! must make the builder again, on Podman, from the recorded catalog
//! inputs, get the recorded image ID that Docker got (builders are
//! reproducible images, whichever engine makes them), and prove every
//! output identical. Without a Podman service (outside CI only) the
//! verifying machine is Docker itself, with the images removed there.
//!
//! Costs one CPython compile, in `verify` (the release's build finds
//! Docker's build cache from `scripts/setup`). The timings are printed for
//! the closing note.

// Tests fail by panicking: unwrap, expect and panic! are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use common::{engine_or_skip, hermetic_bin, repo, text};

fn hermetic(home: &Path, cwd: &Path, args: &[&str]) -> Output {
    hermetic_on(None, home, cwd, args)
}

/// hermetic on the engine at `socket` (the default engine when `None`).
fn hermetic_on(socket: Option<&str>, home: &Path, cwd: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(hermetic_bin());
    if let Some(socket) = socket {
        cmd.arg("--engine-socket").arg(socket);
    }
    cmd.args(args)
        .current_dir(cwd)
        .env("HERMETIC_HOME", home)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("run hermetic")
}

fn git(cwd: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=hermetic test",
            "-c",
            "user.email=test@hermetic",
        ])
        .args(args)
        .current_dir(cwd)
        .env("GIT_AUTHOR_DATE", "@1700000000 +0000")
        .env("GIT_COMMITTER_DATE", "@1700000000 +0000")
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", text(&out));
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let dest = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            fs_err::create_dir_all(&dest).unwrap();
        } else {
            fs_err::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// Every image ID and tag a home's image lock names.
fn locked_images(home: &Path) -> Vec<(String, String)> {
    let mut images = Vec::new();
    for entry in fs_err::read_dir(home).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !(name.starts_with("images.lock.") && name.ends_with(".json")) {
            continue;
        }
        let lock: serde_json::Value =
            serde_json::from_str(&fs_err::read_to_string(&path).unwrap()).unwrap();
        for table in ["builders", "bases"] {
            for (_, image) in lock[table].as_object().into_iter().flatten() {
                images.push((
                    image["tag"].as_str().unwrap().to_string(),
                    image["image_id"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    images
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_verifies_on_a_fresh_home_with_its_builder_remade() {
    let Some(engine) = engine_or_skip("verify_anywhere").await else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    // The release's project: the shipped recipe, committed to git.
    let origin = work.path().join("origin");
    copy_dir(&repo().join("recipes/qr-cli"), &origin.join("app"));
    git(&origin, &["init", "-q"]);
    git(&origin, &["add", "."]);
    git(&origin, &["commit", "-q", "-m", "release"]);

    let build_home = work.path().join("home-build");
    let dist = work.path().join("dist");
    let started = Instant::now();
    let out = hermetic(
        &build_home,
        &origin,
        &[
            "build",
            "--recipe",
            "app/hermetic.toml",
            "--glibc",
            "2.31",
            "--out",
            dist.to_str().unwrap(),
        ],
    );
    let build_secs = started.elapsed().as_secs();
    assert!(out.status.success(), "build: {}", text(&out));
    let record_path = fs_err::read_dir(&dist)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".build.json"))
        .expect("a build record in dist");
    let record: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(&record_path).unwrap()).unwrap();
    let builder_id = record["builder"]["image_id"].as_str().unwrap().to_string();
    assert!(
        record["builder"]["inputs_hash"].is_string(),
        "the record pins the builder by its catalog inputs: {}",
        record["builder"]
    );
    assert!(
        record["builder"]["packages"]["libc6"].is_string(),
        "the record locks the builder's package versions: {}",
        record["builder"]
    );

    // The verifying machine has none of it: it runs the other engine
    // (Podman), and the images the release's lock names are removed there
    // under every name they have; without Podman, from Docker. The derived
    // images the release made on Docker are this test's own: gone first.
    let out = hermetic(&build_home, &origin, &["gc", "--images"]);
    assert!(out.status.success(), "gc: {}", text(&out));
    let podman = common::podman_or_skip("verify_anywhere on Podman").await;
    let (verifier, socket, engine_name) = match podman {
        Some(podman) => (podman, Some(common::podman_socket()), "Podman"),
        None => (engine, None, "Docker"),
    };
    let made = locked_images(&build_home);
    assert!(
        made.iter().any(|(_, id)| *id == builder_id),
        "the lock names the recorded builder {builder_id}: {made:?}"
    );
    for (tag, id) in &made {
        let names = match verifier.inspect_image(id).await.unwrap() {
            Some(info) => info.repo_tags,
            None => continue,
        };
        for name in names {
            verifier.remove_unused_image(&name).await.unwrap();
        }
        assert!(
            verifier.inspect_image(id).await.unwrap().is_none(),
            "{tag} ({id}) is still in {engine_name}"
        );
    }

    // A fresh clone elsewhere, a fresh home, the record from the release.
    let clone = work.path().join("elsewhere").join("checkout");
    fs_err::create_dir_all(clone.parent().unwrap()).unwrap();
    git(
        work.path(),
        &[
            "clone",
            "-q",
            origin.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    // The verifier's checkout has stray untracked files (a log, an old
    // `dist/`, editor state): outside what the record covers, so neither
    // the rebuild's cache key nor any output may change.
    fs_err::write(clone.join("app/build.log"), "stray\n").unwrap();
    fs_err::create_dir_all(clone.join("app/dist")).unwrap();
    fs_err::write(clone.join("app/dist/old-0.9.tar.gz"), b"stray").unwrap();
    fs_err::create_dir_all(clone.join(".idea")).unwrap();
    fs_err::write(clone.join(".idea/workspace.xml"), "<stray/>").unwrap();
    let verify_home = work.path().join("home-verify");
    let started = Instant::now();
    let out = hermetic_on(
        socket.as_deref(),
        &verify_home,
        &clone,
        &["verify", record_path.to_str().unwrap()],
    );
    let verify_secs = started.elapsed().as_secs();
    assert!(out.status.success(), "verify: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("verified: identical"), "{}", text(&out));
    assert!(
        stderr.contains("making it from its recorded catalog inputs"),
        "verify says it remakes the builder: {}",
        text(&out)
    );
    assert!(
        verifier.inspect_image(&builder_id).await.unwrap().is_some(),
        "the builder remade on {engine_name} has the recorded ID {builder_id}"
    );
    eprintln!(
        "verify_anywhere: build on Docker {build_secs} s; verify on {engine_name} with a \
         fresh home (builder remade as {builder_id}) {verify_secs} s"
    );
}

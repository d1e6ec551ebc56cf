//! The Podman pass (issue 16): hermetic driven against Podman's Docker-API
//! service (`scripts/podman-service`, on `/run/podman/podman.sock` or
//! `$HERMETIC_PODMAN_SOCKET`), next to the Docker engine the other tests use.
//! Base import, the builder (copied from Docker by `scripts/setup` with
//! `docker save | podman load`, so it keeps its ID, and recorded in
//! Podman's image lock there), two shipped recipes
//! built with smoke, `image --load`, `gc` after `kill -9`, and the same
//! recipe giving the same bytes on both engines.
//!
//! Outside CI, no Podman service is a loud skip; under `CI=true` (where
//! `.ci/run` sets both engines up) it is a failure.

// Tests fail by panicking: unwrap, expect and panic! are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{repo, text};

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hermetic::engine::EngineKind;

/// hermetic against Podman (`on_podman`) or the default (Docker) engine.
fn hermetic(on_podman: bool, args: &[&str]) -> Output {
    let mut cmd = Command::new(common::hermetic_bin());
    if on_podman {
        cmd.arg("--engine-socket").arg(common::podman_socket());
    }
    cmd.args(args)
        .env_remove("HERMETIC_CATALOG")
        .output()
        .expect("run hermetic")
}

fn build(on_podman: bool, recipe: &str, out: &Path) -> serde_json::Value {
    let recipe = repo().join("recipes").join(recipe).join("hermetic.toml");
    let run = hermetic(
        on_podman,
        &[
            "build",
            "--recipe",
            recipe.to_str().unwrap(),
            "--glibc",
            "2.31",
            "--out",
            out.to_str().unwrap(),
            "--rebuild",
            "--json",
        ],
    );
    assert!(
        run.status.success(),
        "build on podman={on_podman}\n{}",
        text(&run)
    );
    serde_json::from_slice(&run.stdout).unwrap()
}

/// The image ID `images build --json` reports for the one image it made.
fn made_id(out: &Output) -> String {
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = report
        .as_array()
        .and_then(|a| a.first())
        .and_then(|r| r["image_id"].as_str())
        .unwrap_or_else(|| panic!("no image_id in {report}"));
    id.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_builds_the_same_bytes_as_docker_and_cleans_up() {
    let test = "podman_builds_the_same_bytes_as_docker_and_cleans_up";
    let Some(podman) = common::podman_or_skip(test).await else {
        return;
    };
    let Some(docker) = common::engine_or_skip(test).await else {
        return;
    };
    let docker_builder = common::builder_image(&docker, "2.31").await;
    common::base_image(&docker, "trixie").await;

    // Base import: Podman 4.3 ignores the tag on import; the image must
    // still land under hermetic's name. Forget it first so it is imported.
    let list = hermetic(true, &["images", "list", "--json"]);
    assert!(list.status.success(), "{}", text(&list));
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let trixie = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == "runtime" && r["suite"] == "trixie")
        .unwrap_or_else(|| panic!("no trixie row: {rows:#}"))
        .clone();
    if let Some(id) = trixie["image_id"].as_str()
        && trixie["present"] == true
    {
        podman.remove_unused_image(id).await.unwrap();
    }
    let made = hermetic(true, &["images", "build", "--base", "trixie", "--json"]);
    assert!(
        made.status.success(),
        "base import on Podman\n{}",
        text(&made)
    );

    // An image build leaves no intermediate (buildah) containers behind.
    let external = || {
        let out = Command::new("podman")
            .args([
                "--remote",
                "--url",
                &common::podman_socket(),
                "ps",
                "-a",
                "--external",
                "-q",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let before = external();
    let ctx = tempfile::tempdir().unwrap();
    let context_tar = ctx.path().join("context.tar");
    common::dockerfile_context(
        &context_tar,
        &format!(
            "FROM {}\nRUN echo one > /one\nRUN echo two > /two\n",
            made_id(&made)
        ),
    );
    let tag = format!("hermetic-test/intermediates:{}", std::process::id());
    podman
        .build_image(&hermetic::engine::BuildImageSpec {
            context_tar,
            dockerfile: "Dockerfile".into(),
            tag: tag.clone(),
            build_args: Default::default(),
            labels: Default::default(),
            log: ctx.path().join("build.log"),
            no_cache: false,
        })
        .await
        .unwrap();
    assert_eq!(external(), before, "the image build left containers behind");
    podman.remove_unused_image(&tag).await.unwrap();

    // The builder setup copied over (`docker save | podman load`) keeps
    // Docker's image ID, and setup recorded it in Podman's image lock, so
    // Podman lists it as present without anything being built.
    let list = hermetic(true, &["images", "list", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let builder = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == "builder" && r["glibc"] == "2.31" && r["source"] == "local")
        .unwrap_or_else(|| panic!("no 2.31 builder row: {rows:#}"));
    assert_eq!(
        builder["present"], true,
        "{builder}: `scripts/setup --podman` copies the builder to Podman and adopts it there"
    );
    assert_eq!(builder["image_id"], docker_builder.as_str(), "{builder}");

    // Two shipped recipes with smoke on Podman; qr-cli also on Docker,
    // byte for byte the same.
    let work = tempfile::tempdir().unwrap();
    let mut first = None;
    for recipe in ["qr-cli", "pyyaml-libyaml"] {
        let out = work.path().join(format!("podman-{recipe}"));
        let started = Instant::now();
        let report = build(true, recipe, &out);
        eprintln!(
            "{recipe} on Podman: {:.1} s",
            started.elapsed().as_secs_f64()
        );
        assert_eq!(report["targets"][0]["smoke"]["passed"], true, "{report}");
        first.get_or_insert((out, report));
    }
    let (podman_out, podman_report) = first.unwrap();
    let docker_out = work.path().join("docker-qr-cli");
    let started = Instant::now();
    build(false, "qr-cli", &docker_out);
    eprintln!("qr-cli on Docker: {:.1} s", started.elapsed().as_secs_f64());
    common::assert_same_outputs(&podman_out, "Podman", &docker_out, "Docker");

    // A release built on Docker verifies on Podman.
    let record = fs_err::read_dir(&docker_out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".build.json"))
        .unwrap();
    let started = Instant::now();
    let recipe = repo().join("recipes/qr-cli/hermetic.toml");
    let verify = hermetic(
        true,
        &[
            "verify",
            record.to_str().unwrap(),
            "--recipe",
            recipe.to_str().unwrap(),
            "--json",
        ],
    );
    eprintln!(
        "verify of the Docker release on Podman: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        verify.status.success(),
        "verify on Podman\n{}",
        text(&verify)
    );
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(report["matched"], true, "{report:#}");

    // `image --load` into Podman: the image runs there.
    let archive = podman_out.join(podman_report["targets"][0]["archive"].as_str().unwrap());
    let tag = format!("podman-{}", std::process::id());
    let loaded = hermetic(
        true,
        &[
            "image",
            archive.to_str().unwrap(),
            "--load",
            "--tag",
            &tag,
            "--json",
        ],
    );
    assert!(
        loaded.status.success(),
        "image --load on Podman\n{}",
        text(&loaded)
    );
    let report: serde_json::Value = serde_json::from_slice(&loaded.stdout).unwrap();
    let name = report["loaded"]
        .as_str()
        .unwrap_or_else(|| panic!("{report}"));
    // Podman's own name for it: what the user types there.
    assert_eq!(
        name,
        EngineKind::Podman.local_image_name(&format!("qr:{tag}")),
        "{report}"
    );
    let info = podman
        .inspect_image(name)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{name} not in Podman after --load\n{}", text(&loaded)));
    let run = Command::new("podman")
        .args([
            "--remote",
            "--url",
            &common::podman_socket(),
            "run",
            "--rm",
            "--network",
            "none",
        ])
        .arg(&info.id)
        .args(["qr", "--factory=pil", "hermetic"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "the loaded image runs\n{}",
        text(&run)
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("PNG"));
    podman.remove_unused_image(name).await.unwrap();

    // gc on Podman: a killed hermetic's container is removed.
    let mut child = Command::new(common::hermetic_bin())
        .args([
            "--engine-socket",
            &common::podman_socket(),
            "exec",
            "--glibc",
            "2.31",
            "--",
            "sleep",
            "300",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let build_id = format!("exec-{}", child.id());
    common::wait_for_labelled(&podman, &build_id, Duration::from_secs(90)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let gc = hermetic(true, &["gc", "--json"]);
    assert!(gc.status.success(), "{}", text(&gc));
    assert!(
        podman
            .labelled_containers(Some(&build_id))
            .await
            .unwrap()
            .is_empty(),
        "gc left the killed exec's container on Podman\n{}",
        text(&gc)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_refuses_removing_a_multi_tagged_image_by_id_without_an_error() {
    let Some(podman) = common::podman_or_skip(
        "podman_refuses_removing_a_multi_tagged_image_by_id_without_an_error",
    )
    .await
    else {
        return;
    };
    common::assert_multi_tag_removal_is_refused(&podman).await;
}

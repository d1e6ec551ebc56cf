//! Issue 13's proof: with no registry reachable (none is, from these
//! machines), `hermetic build --glibc 2.28` falls back from the catalog's
//! pinned manylinux_2_28 image to the local toolchain builder (bullseye, whose
//! glibc is 2.31, with zig targeting 2.28 behind `hermetic-cc`). Shipped
//! recipes and two packages nobody here wrote, built from their sdists (C:
//! MarkupSafe; C++: kiwisolver), build, audit compliant at 2.28, and run moved
//! and offline on bullseye (the oldest runtime here) and on trixie.
//!
//! The builder is made through hermetic itself and cached by its inputs
//! hash: about 10 minutes the first time on a 2-core machine (apt, zig,
//! sqlite and CPython), seconds afterwards.

mod common;

use common::{repo, text};

use std::path::Path;
use std::process::{Command, Output};

fn hermetic(args: &[&str]) -> Output {
    Command::new(common::hermetic_bin())
        .args(args)
        .env_remove("HERMETIC_CATALOG")
        .output()
        .expect("run hermetic")
}

fn build_228(recipe: &Path, out: &Path) -> Output {
    hermetic(&[
        "build",
        "--recipe",
        recipe.to_str().unwrap(),
        "--glibc",
        "2.28",
        "--smoke-on",
        "bullseye",
        "--out",
        out.to_str().unwrap(),
        "--rebuild",
        "--json",
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn glibc_2_28_builds_without_a_registry_on_the_toolchain_builder() {
    let test = "glibc_2_28_builds_without_a_registry_on_the_toolchain_builder";
    let Some(engine) = common::engine_or_skip(test).await else {
        return;
    };
    let trixie = common::base_image(&engine, "trixie").await;
    common::base_image(&engine, "bullseye").await;
    let builder = common::builder_image(&engine, "2.28").await;

    // `images list` shows both 2.28 builders and which one is which.
    let list = hermetic(&["images", "list", "--json"]);
    assert!(list.status.success(), "{}", text(&list));
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let rows_228: Vec<&serde_json::Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["role"] == "builder" && r["glibc"] == "2.28")
        .collect();
    assert_eq!(rows_228.len(), 2, "{rows:#}");
    assert!(
        rows_228
            .iter()
            .any(|r| r["source"] == "upstream" && r["present"] == false),
        "{rows:#}"
    );
    let local = rows_228
        .iter()
        .find(|r| r["source"] == "local")
        .unwrap_or_else(|| panic!("no local 2.28 builder row: {rows:#}"));
    assert_eq!(local["kind"], "toolchain", "{local}");
    assert_eq!(local["image_id"], builder.as_str(), "{local}");
    assert_eq!(local["stale"], false, "{local}");

    let work = tempfile::tempdir().unwrap();
    let recipes = [
        ("qr-cli", repo().join("recipes/qr-cli/hermetic.toml")),
        (
            "embed-launcher",
            repo().join("recipes/embed-launcher/hermetic.toml"),
        ),
        (
            "native-sdists",
            repo().join("tests/fixtures/native-sdists/hermetic.toml"),
        ),
    ];
    for (label, recipe) in &recipes {
        let out_dir = work.path().join(format!("out-{label}"));
        let out = build_228(recipe, &out_dir);
        assert!(
            out.status.success(),
            "{label}: build failed\n{}",
            text(&out)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("is unavailable") && stderr.contains("local toolchain builder"),
            "{label}: the fallback was not announced\n{stderr}"
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let target = &report["targets"][0];
        assert_eq!(target["glibc"], "2.28", "{label}: {target}");
        assert_eq!(target["smoke"]["passed"], true, "{label}: {target}");
        assert_eq!(target["smoke"]["suite"], "bullseye", "{label}: {target}");

        // The record names the toolchain builder the fallback chose.
        let record: serde_json::Value = serde_json::from_slice(
            &fs_err::read(out_dir.join(target["record"].as_str().unwrap())).unwrap(),
        )
        .unwrap();
        assert_eq!(record["builder"]["image_id"], builder.as_str(), "{label}");

        // The archive audits compliant at 2.28 on its own, not only inside
        // the build.
        let archive = out_dir.join(target["archive"].as_str().unwrap());
        let audit = hermetic(&[
            "audit",
            "--glibc",
            "2.28",
            "--json",
            archive.to_str().unwrap(),
        ]);
        assert!(audit.status.success(), "{label}: audit\n{}", text(&audit));
        let audit: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
        assert_eq!(audit["compliant"], true, "{label}: {audit:#}");
        assert!(
            audit["elf_files"].as_u64().unwrap() > 10,
            "{label}: {audit}"
        );

        // Moved to another path, read-only, offline, on trixie, which has
        // no Python: the smoke command still runs.
        let moved = work.path().join(format!("moved-{label}"));
        fs_err::create_dir_all(&moved).unwrap();
        let reader = hermetic::archive::open_archive(&archive).unwrap();
        tar::Archive::new(reader).unpack(&moved).unwrap();
        let top = format!("/srv/elsewhere/{}", report["name"].as_str().unwrap());
        let smoke = smoke_command(label);
        let run = Command::new("docker")
            .args(["run", "--rm", "--network", "none", "-v"])
            .arg(format!("{}:/srv/elsewhere:ro", moved.display()))
            .args(["-w", &top, &trixie])
            .arg(format!("{top}/{}", smoke.0[0]))
            .args(&smoke.0[1..])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{label}: moved run on trixie\n{}",
            text(&run)
        );
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(stdout.contains(smoke.1), "{label}: {}", text(&run));
    }
}

/// What each recipe's smoke test runs (relative to the bundle's top), and
/// what it must print.
fn smoke_command(label: &str) -> (&'static [&'static str], &'static str) {
    match label {
        "qr-cli" => (&["qr", "--factory=pil", "hermetic"], "PNG"),
        "embed-launcher" => (&["bin/launcher", "--smoke-python"], "smoke-python ok 3.11"),
        _ => (
            &[
                "python/runtime/bin/python3",
                "-c",
                "import markupsafe._speedups, kiwisolver; print('native', markupsafe.escape('<a>'))",
            ],
            "native &lt;a&gt;",
        ),
    }
}

//! `hermetic build` end to end, against the real engine: every shipped
//! recipe is built for glibc 2.31, smoke-tested from a random path on trixie
//! (inside the build), then checked here: checksums, no build path anywhere
//! in the bundle, the SBOM against what pip reports installed, and the
//! bundle run again from yet another path on this host.
//!
//! Also: the glibc guard, hash mismatches, malformed recipes, and cached
//! rebuilds. Every build here passes `--rebuild` unless it tests the cache,
//! so a warm cache on the machine cannot hide a broken build.

// Tests fail by panicking: unwrap, expect and panic! are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{repo, text};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn hermetic(args: &[&str]) -> Output {
    Command::new(common::hermetic_bin())
        .args(args)
        .output()
        .expect("run hermetic")
}

/// Needles that must appear in no file of a finished bundle (the builder's
/// CPython prefix may appear only inside ELF files, see bundle/relocate.rs).
const BUILD_PATHS: &[&str] = &[
    "/hermetic/out",
    "/hermetic/src",
    "/hermetic/work",
    "/hermetic/inputs",
    "/tmp/pip-",
];
const PYTHON_PREFIX: &str = "/opt/python/cp311-cp311";

fn scan_for_build_paths(top: &Path) -> Vec<String> {
    common::find_needles(top, BUILD_PATHS, &[PYTHON_PREFIX])
}

/// Builds a shipped recipe and checks everything the issue asks of it.
async fn build_and_check(recipe: &str) {
    let Some(engine) = common::engine_or_skip(recipe).await else {
        return;
    };
    common::builder_image(&engine, "2.31").await;
    common::base_image(&engine, "trixie").await;

    let out_dir = tempfile::tempdir().unwrap();
    let recipe_path = repo().join("recipes").join(recipe).join("hermetic.toml");
    let out = hermetic(&[
        "build",
        "--recipe",
        recipe_path.to_str().unwrap(),
        "--glibc",
        "2.31",
        "--out",
        out_dir.path().to_str().unwrap(),
        "--rebuild",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{recipe}: build failed\n{}",
        text(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let target = &report["targets"][0];
    assert_eq!(report["passed"], true);
    assert_eq!(target["smoke"]["passed"], true, "{target}");
    assert_eq!(target["smoke"]["suite"], "trixie");
    assert!(target["smoke"]["linkage_checked"].as_u64().unwrap() > 0);
    assert_eq!(target["smoke"]["linkage_problems"], serde_json::json!([]));

    // SHA256SUMS is checkable by sha256sum -c.
    let sums = Command::new("sha256sum")
        .arg("-c")
        .arg("SHA256SUMS")
        .current_dir(out_dir.path())
        .output()
        .unwrap();
    assert!(sums.status.success(), "{}", text(&sums));

    // Unpack at another path: no build path anywhere.
    let archive = out_dir.path().join(target["archive"].as_str().unwrap());
    let moved = tempfile::tempdir().unwrap();
    let moved_root = moved.path().join("moved again");
    fs_err::create_dir_all(&moved_root).unwrap();
    let reader = hermetic::archive::open_archive(&archive).unwrap();
    tar::Archive::new(reader).unpack(&moved_root).unwrap();
    let name = report["name"].as_str().unwrap();
    let top = moved_root.join(name);
    let hits = scan_for_build_paths(&top);
    assert!(
        hits.is_empty(),
        "{recipe}: build paths left in the bundle: {hits:#?}"
    );
    // Bytecode: qr-cli asks for checked-hash .pyc files (PEP 552): every
    // one is hash-based and checked (flags 0b11, never an mtime) and sits in
    // __pycache__ beside its source. The other recipes ship none, so Python
    // compiles in memory at run time.
    let bytecode: Vec<PathBuf> = walkdir::WalkDir::new(&top)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| p.extension().is_some_and(|e| e == "pyc"))
        .collect();
    if recipe == "qr-cli" {
        assert!(bytecode.len() > 1000, "{recipe}: {} .pyc", bytecode.len());
        for pyc in &bytecode {
            let data = fs_err::read(pyc).unwrap();
            assert_eq!(
                data[4..8],
                [3, 0, 0, 0],
                "not checked-hash: {}",
                pyc.display()
            );
            let cache_dir = pyc.parent().unwrap();
            assert_eq!(cache_dir.file_name().unwrap(), "__pycache__");
            let stem = pyc
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .split('.')
                .next()
                .unwrap();
            let source = cache_dir.parent().unwrap().join(format!("{stem}.py"));
            assert!(source.is_file(), "no source for {}", pyc.display());
        }
    } else {
        let caches: Vec<String> = walkdir::WalkDir::new(&top)
            .into_iter()
            .map(|e| e.unwrap().path().display().to_string())
            .filter(|p| p.ends_with("__pycache__"))
            .collect();
        assert!(
            bytecode.is_empty() && caches.is_empty(),
            "{recipe}: bytecode shipped: {bytecode:#?} {caches:#?}"
        );
    }

    // The SBOM (beside the archive and inside the bundle, identical) passes
    // CycloneDX's schema and lists what pip says is installed and every
    // vendored library, each with a purl and a SHA-256.
    let stem = hermetic::archive::archive_stem(target["archive"].as_str().unwrap()).unwrap();
    let sbom_path = out_dir.path().join(format!("{stem}.cdx.json"));
    let inside = fs_err::read(top.join(format!("share/sbom/{name}.cdx.json"))).unwrap();
    assert_eq!(fs_err::read(&sbom_path).unwrap(), inside);
    common::validate_cdx(recipe, &sbom_path).unwrap();
    let sbom: serde_json::Value = serde_json::from_slice(&inside).unwrap();
    let components = sbom["components"].as_array().unwrap();
    let purls: BTreeSet<String> = components
        .iter()
        .filter_map(|c| {
            c["purl"]
                .as_str()
                .map(|p| p.split('?').next().unwrap().to_string())
        })
        .collect();

    let python = top.join("python/runtime/bin/python3.11");
    let pip = Command::new(&python)
        .args([
            "-m",
            "pip",
            "list",
            "--format",
            "json",
            "--disable-pip-version-check",
        ])
        .env("PYTHONHOME", top.join("python/runtime"))
        .env_remove("PYTHONPATH")
        .output()
        .unwrap();
    assert!(
        pip.status.success(),
        "the bundle's own pip did not run from {}: {}",
        top.display(),
        text(&pip)
    );
    let installed: Vec<serde_json::Value> = serde_json::from_slice(&pip.stdout).unwrap();
    assert!(!installed.is_empty());
    for dist in &installed {
        let name = dist["name"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase()
            .replace(['_', '.'], "-");
        let purl = format!("pkg:pypi/{name}@{}", dist["version"].as_str().unwrap());
        assert!(
            purls.contains(&purl),
            "{recipe}: pip reports {purl}, the SBOM does not list it"
        );
    }
    let lib_dir = top.join("lib");
    if lib_dir.is_dir() {
        for entry in fs_err::read_dir(&lib_dir).unwrap() {
            let file = entry.unwrap().path();
            let rel = format!("lib/{}", file.file_name().unwrap().to_string_lossy());
            let c = components
                .iter()
                .find(|c| c["bom-ref"].as_str().is_some_and(|r| r.ends_with(&rel)))
                .unwrap_or_else(|| panic!("{recipe}: {rel} missing from the SBOM"));
            assert!(c["purl"].is_string(), "{recipe}: {rel} has no purl: {c}");
            assert!(
                c["hashes"]
                    .as_array()
                    .is_some_and(|h| h.iter().any(|h| h["alg"] == "SHA-256")),
                "{c}"
            );
        }
    }

    // The provenance statement passes the in-toto bindings and binds the
    // archive, the SBOM and the record by their hashes.
    let statement_path = out_dir.path().join(target["provenance"].as_str().unwrap());
    common::validate_intoto(recipe, &statement_path).unwrap();
    let statement: serde_json::Value =
        serde_json::from_slice(&fs_err::read(&statement_path).unwrap()).unwrap();
    let named: BTreeSet<(String, String)> = statement["subject"]
        .as_array()
        .unwrap()
        .iter()
        .chain(
            statement["predicate"]["runDetails"]["byproducts"]
                .as_array()
                .unwrap(),
        )
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_string(),
                d["digest"]["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for name in [
        target["archive"].as_str().unwrap().to_string(),
        format!("{stem}.cdx.json"),
        target["record"].as_str().unwrap().to_string(),
    ] {
        let (hash, _) = hermetic::archive::sha256_file(&out_dir.path().join(&name)).unwrap();
        assert!(
            named.contains(&(name.clone(), hash)),
            "{recipe}: the statement does not bind {name}: {named:?}"
        );
    }

    // The second build, varied the way reprotest varies builds: `verify`
    // rebuilds from the record into another directory, from another working
    // directory, under another umask, host name, time zone, locale and wall
    // clock (the builds' containers get fresh names and host names anyway),
    // and must reproduce archive, SBOM, record and statement byte for byte.
    // For pyyaml it also does so on an engine without the derived builder
    // image the build made: the rebuild installs libyaml at the recorded
    // versions itself.
    let record = out_dir.path().join(target["record"].as_str().unwrap());
    if recipe == "pyyaml-libyaml" {
        let removed = forget_derived_images_adding(&engine, "libyaml-dev").await;
        assert!(
            removed > 0,
            "the build made no derived image with libyaml-dev"
        );
    }
    let v = varied(&[
        "verify",
        "--json",
        "--recipe",
        recipe_path.to_str().unwrap(),
        record.to_str().unwrap(),
    ]);
    assert!(
        v.status.success(),
        "{recipe}: the varied rebuild differs\n{}",
        text(&v)
    );
    let verdict: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(verdict["matched"], true, "{verdict}");
    let compared: Vec<&str> = verdict["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    for suffix in [
        ".tar.gz (rebuilt)",
        ".tar.zst (rebuilt)",
        ".cdx.json (rebuilt)",
        ".build.json (rebuilt vs released)",
        ".intoto.json (rebuilt vs released)",
    ] {
        let archive_suffix = suffix.starts_with(".tar");
        let wanted = !archive_suffix
            || target["archive"]
                .as_str()
                .unwrap()
                .ends_with(&suffix[..suffix.find(' ').unwrap()]);
        assert_eq!(
            compared.iter().any(|c| c.ends_with(suffix)),
            wanted,
            "{recipe}: verify's comparison of *{suffix}: {compared:?}"
        );
    }
    if recipe == "pyyaml-libyaml" {
        let remade = derived_images_adding(&engine, "libyaml-dev").await;
        assert!(!remade.is_empty(), "verify did not derive the builder anew");
    }
    // local-project ships a zstd archive: the other readers handle it too.
    if recipe == "local-project" {
        assert!(
            archive.to_string_lossy().ends_with(".tar.zst"),
            "{}",
            archive.display()
        );
        let audit = hermetic(&[
            "audit",
            archive.to_str().unwrap(),
            "--glibc",
            "2.31",
            "--json",
        ]);
        assert!(audit.status.success(), "{}", text(&audit));
        let sbom = hermetic(&["sbom", archive.to_str().unwrap()]);
        assert!(sbom.status.success(), "{}", text(&sbom));
        assert_eq!(sbom.stdout, inside, "sbom of the .tar.zst");
    }

    // And it runs on this host too, from the moved path.
    let smoke: Vec<String> = target["smoke"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let in_container = target["smoke"]["path"].as_str().unwrap();
    let argv0 = smoke[0].replace(in_container, moved_root.to_str().unwrap());
    let run = Command::new(&argv0)
        .args(&smoke[1..])
        .env("PYTHONPATH", "/nonexistent")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{recipe}: smoke command failed on the host from {argv0}: {}",
        text(&run)
    );
}

/// Tags of the derived builder images whose added packages include `package`.
async fn derived_images_adding(engine: &hermetic::engine::Engine, package: &str) -> Vec<String> {
    let (key, value) = hermetic::build::fetch::DERIVED_IMAGE_LABEL;
    let needle = format!("\"name\":\"{package}\"");
    engine
        .images_labelled(&format!("{key}={value}"))
        .await
        .unwrap()
        .into_iter()
        .filter(|i| {
            i.labels
                .get("io.hermetic.packages")
                .is_some_and(|p| p.contains(&needle))
        })
        .flat_map(|i| i.repo_tags)
        .collect()
}

/// Removes those images, as on a machine that never made them; returns how
/// many there were.
async fn forget_derived_images_adding(engine: &hermetic::engine::Engine, package: &str) -> usize {
    let tags = derived_images_adding(engine, package).await;
    for tag in &tags {
        assert!(
            engine.remove_unused_image(tag).await.unwrap(),
            "{tag} is in use"
        );
    }
    tags.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn recipe_qr_cli() {
    build_and_check("qr-cli").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn recipe_pyyaml_libyaml() {
    build_and_check("pyyaml-libyaml").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn recipe_embed_launcher() {
    build_and_check("embed-launcher").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn recipe_local_project() {
    build_and_check("local-project").await;
}

fn six_recipe(dir: &Path, hash: &str) -> PathBuf {
    fs_err::write(
        dir.join("hermetic.toml"),
        "[app]\nname = \"sixdemo\"\nversion = \"0.1\"\nglibc = \"2.31\"\npython = \"3.11\"\nsource_date_epoch = 1700000000\n\n\
         [install]\nrequirements = \"requirements.txt\"\n\n\
         [smoke]\ncommand = [\"python/runtime/bin/python3.11\", \"-c\", \"import six, ssl; print('ok', six.__version__)\"]\nexpect = \"ok 1.16.0\"\n",
    )
    .unwrap();
    fs_err::write(
        dir.join("requirements.txt"),
        format!("six==1.16.0 --hash=sha256:{hash}\n"),
    )
    .unwrap();
    dir.join("hermetic.toml")
}

const SIX_SHA256: &str = "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254";

/// `hermetic [global…] build -r RECIPE --out OUT --rebuild [extra…]`.
fn build_recipe(recipe: &Path, out_dir: &Path, global: &[&str], extra: &[&str]) -> Output {
    let mut args = global.to_vec();
    args.extend([
        "build",
        "-r",
        recipe.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--rebuild",
    ]);
    args.extend(extra);
    hermetic(&args)
}

/// A failed build wrote nothing into `--out`.
fn assert_no_output(out_dir: &Path) {
    let left: Vec<_> = fs_err::read_dir(out_dir)
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "output left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_hash_names_the_file_and_both_hashes_and_writes_nothing() {
    let Some(engine) = common::engine_or_skip("wrong_hash").await else {
        return;
    };
    common::builder_image(&engine, "2.31").await;
    let dir = tempfile::tempdir().unwrap();
    let wrong = "0".repeat(64);
    let recipe = six_recipe(dir.path(), &wrong);
    let out_dir = dir.path().join("dist");
    let out = build_recipe(&recipe, &out_dir, &[], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr.contains("six-1.16.0-py2.py3-none-any.whl"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&wrong) && stderr.contains(SIX_SHA256),
        "{stderr}"
    );
    assert_no_output(&out_dir);
}

/// Runs hermetic the way reprotest's second build runs: from `/`, with
/// umask 077, another time zone and locale, the host's wall clock three
/// years ahead (libfaketime; what runs in containers keeps the real clock,
/// and the build gives every container a fresh name and host name anyway)
/// and, where we may make a UTS namespace (root, as in CI), another host
/// name. Under `CI=true` every one of these must be possible.
fn varied(args: &[&str]) -> Output {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let can = |program: &str, probe: &[&str]| {
        Command::new(program)
            .args(probe)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let loud = |what: &str| {
        assert!(
            !ci,
            "CI=true but {what} (scripts/setup installs what it needs)"
        );
        eprintln!("\n!!!!! {what}: not varied in this run !!!!!\n");
    };
    let can_unshare = can("unshare", &["--uts", "true"]);
    if !can_unshare {
        loud("cannot unshare a UTS namespace here, so the host name");
    }
    let can_fake_time = can("faketime", &["-f", "+3y", "true"]);
    if !can_fake_time {
        loud("no faketime here, so the wall clock");
    }
    let mut script = String::from("umask 077 && ");
    if can_unshare {
        script.push_str("hostname hermetic-reprotest-b && ");
    }
    script.push_str(if can_fake_time {
        "exec faketime -f +3y \"$0\" \"$@\""
    } else {
        "exec \"$0\" \"$@\""
    });
    let mut cmd = if can_unshare {
        let mut c = Command::new("unshare");
        c.args(["--uts", "sh", "-c", &script]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", &script]);
        c
    };
    cmd.arg(common::hermetic_bin())
        .args(args)
        .current_dir("/")
        .env("TZ", "Asia/Kathmandu")
        .env("LANG", "fr_FR.UTF-8")
        .env("LC_ALL", "fr_FR.UTF-8")
        // Timeouts and progress use the monotonic clock: leave it real.
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .output()
        .expect("run hermetic")
}

fn hermetic_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(common::hermetic_bin());
    cmd.args(args).current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run hermetic")
}

/// Reproducibility and verify, on a small recipe: two builds varied the way
/// reprotest varies them (output and working directory, TZ, locale, umask,
/// host name, wall clock) give identical archives, records, SBOMs and
/// provenance statements; an unchanged rebuild is served from the cache; `verify` passes on
/// the untouched release and names the file after one byte in the archive
/// changed.
#[tokio::test(flavor = "multi_thread")]
async fn reproducible_cached_and_verified() {
    let Some(engine) = common::engine_or_skip("reproducible").await else {
        return;
    };
    common::builder_image(&engine, "2.31").await;
    common::base_image(&engine, "trixie").await;
    let dir = tempfile::tempdir().unwrap();
    let recipe = six_recipe(dir.path(), SIX_SHA256);
    let recipe = recipe.to_str().unwrap();
    let out_a = dir.path().join("dist");
    let out_b = tempfile::tempdir().unwrap();
    let out_b = out_b.path().join("elsewhere");

    let a = hermetic_in(
        dir.path(),
        &[
            "build",
            "-r",
            recipe,
            "--out",
            "dist",
            "--rebuild",
            "--json",
        ],
        &[("TZ", "UTC"), ("LANG", "C.UTF-8")],
    );
    assert!(a.status.success(), "{}", text(&a));
    let b = varied(&[
        "build",
        "-r",
        recipe,
        "--out",
        out_b.to_str().unwrap(),
        "--rebuild",
        "--json",
    ]);
    assert!(b.status.success(), "{}", text(&b));
    let ja: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    let stem = ja["targets"][0]["archive"]
        .as_str()
        .unwrap()
        .trim_end_matches(".tar.gz")
        .to_string();
    for suffix in [".tar.gz", ".build.json", ".cdx.json", ".intoto.json"] {
        let x = fs_err::read(out_a.join(format!("{stem}{suffix}"))).unwrap();
        let y = fs_err::read(out_b.join(format!("{stem}{suffix}"))).unwrap();
        assert!(x == y, "{stem}{suffix} differs between the two builds");
    }

    // Unchanged inputs: served from the cache, same bytes.
    let c = hermetic_in(
        dir.path(),
        &["build", "-r", recipe, "--out", "dist", "--json"],
        &[],
    );
    assert!(c.status.success(), "{}", text(&c));
    let jc: serde_json::Value = serde_json::from_slice(&c.stdout).unwrap();
    assert_eq!(ja["targets"][0]["cached"], false);
    assert_eq!(jc["targets"][0]["cached"], true);
    assert_eq!(ja["targets"][0]["sha256"], jc["targets"][0]["sha256"]);
    assert_eq!(
        ja["targets"][0]["vendored_libs"],
        jc["targets"][0]["vendored_libs"]
    );

    // verify: checksums, then a full rebuild from the record.
    let sums = hermetic(&["verify", "--checksums", out_a.to_str().unwrap()]);
    assert!(sums.status.success(), "{}", text(&sums));
    let record = out_a.join(format!("{stem}.build.json"));
    let v = hermetic_in(dir.path(), &["verify", record.to_str().unwrap()], &[]);
    assert!(
        v.status.success(),
        "verify of an untouched release failed\n{}",
        text(&v)
    );
    // Each output identical, and one line a release page can quote.
    let stdout = String::from_utf8_lossy(&v.stdout);
    assert!(
        stdout.contains(&format!("identical {stem}.tar.gz (rebuilt)"))
            && stdout.contains("verified: identical: ")
            && stdout.contains(&format!("rebuilt from {stem}.build.json")),
        "{}",
        text(&v)
    );

    recorded_inputs_that_are_gone_are_errors(dir.path(), recipe, &record);

    // Only a stale copy of the recipe where the verifier stands (the record
    // carried elsewhere): never used; the error names it and both hashes.
    let elsewhere = tempfile::tempdir().unwrap();
    let carried = elsewhere
        .path()
        .join("release")
        .join(record.file_name().unwrap());
    fs_err::create_dir_all(carried.parent().unwrap()).unwrap();
    fs_err::copy(&record, &carried).unwrap();
    let checkout = elsewhere.path().join("checkout");
    fs_err::create_dir_all(&checkout).unwrap();
    let recorded: serde_json::Value =
        serde_json::from_slice(&fs_err::read(&record).unwrap()).unwrap();
    let recipe_name = recorded["recipe"]["path"].as_str().unwrap();
    let mut stale = fs_err::read(dir.path().join(recipe_name)).unwrap();
    stale.extend_from_slice(b"\n# edited after the release\n");
    fs_err::write(checkout.join(recipe_name), stale).unwrap();
    let v = hermetic_in(&checkout, &["verify", carried.to_str().unwrap()], &[]);
    assert_eq!(v.status.code(), Some(2), "{}", text(&v));
    let stderr = String::from_utf8_lossy(&v.stderr);
    assert!(
        stderr.contains(checkout.join(recipe_name).to_str().unwrap())
            && stderr.contains(recorded["recipe"]["sha256"].as_str().unwrap()),
        "{}",
        text(&v)
    );

    // One byte of one file inside the archive changes: both modes fail, and
    // the rebuild mode names the file.
    let archive = out_a.join(format!("{stem}.tar.gz"));
    let work = tempfile::tempdir().unwrap();
    let gz = flate2::read::GzDecoder::new(fs_err::File::open(&archive).unwrap());
    tar::Archive::new(gz).unpack(work.path()).unwrap();
    let victim = work
        .path()
        .join("sixdemo/python/runtime/lib/python3.11/site-packages/six.py");
    let mut bytes = fs_err::read(&victim).unwrap();
    bytes[100] ^= 0x20;
    fs_err::write(&victim, bytes).unwrap();
    let opts = hermetic::archive::ArchiveOptions {
        source_date_epoch: 1700000000,
        compression: hermetic::archive::Compression::Gzip,
    };
    hermetic::archive::write_archive_atomically(
        &work.path().join("sixdemo"),
        "sixdemo",
        &archive,
        &opts,
    )
    .unwrap();
    let sums = hermetic(&["verify", "--checksums", out_a.to_str().unwrap()]);
    assert_eq!(sums.status.code(), Some(1), "{}", text(&sums));
    assert!(
        String::from_utf8_lossy(&sums.stdout).contains(&format!("MISMATCH  {stem}.tar.gz")),
        "{}",
        text(&sums)
    );
    let v = hermetic_in(dir.path(), &["verify", record.to_str().unwrap()], &[]);
    assert_eq!(v.status.code(), Some(1), "{}", text(&v));
    let stdout = String::from_utf8_lossy(&v.stdout);
    assert!(
        stdout.contains("sixdemo/python/runtime/lib/python3.11/site-packages/six.py"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("DIFFERENT {stem}.tar.gz (released)"))
            && stdout.contains("NOT verified: ")
            && stdout.contains(&format!("differ from their rebuild from {stem}.build.json")),
        "{stdout}"
    );
    assert!(stdout.contains("line "), "a text diff is shown: {stdout}");
}

/// `verify` from a record whose inputs cannot be had as recorded (a changed
/// recipe, source tree, builder image, Python file or Debian package): exit
/// 2 and an error naming the input, never a rebuild reported as a mismatch.
fn recorded_inputs_that_are_gone_are_errors(project: &Path, recipe: &str, record: &Path) {
    let original: serde_json::Value =
        serde_json::from_slice(&fs_err::read(record).unwrap()).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let tampered = scratch.path().join(record.file_name().unwrap());
    let verify_with = |edit: &dyn Fn(&mut serde_json::Value), expect: &[&str]| {
        let mut doc = original.clone();
        edit(&mut doc);
        fs_err::write(&tampered, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
        let out = hermetic_in(
            project,
            &["verify", "--recipe", recipe, tampered.to_str().unwrap()],
            &[],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        for needle in expect {
            assert!(
                stderr.contains(needle),
                "{needle:?} not in:\n{}",
                text(&out)
            );
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !stdout.contains("DIFFERENT") && !stdout.contains("NOT verified"),
            "{}",
            text(&out)
        );
    };
    let zeros = "0".repeat(64);
    // The fetched wheel: a hash the recipe does not accept.
    verify_with(
        &|r| r["inputs"][0]["sha256"] = zeros.clone().into(),
        &[
            "cannot rebuild from the record",
            "six-1.16.0-py2.py3-none-any.whl",
            &zeros,
        ],
    );
    // The source tree: the error names the entries that differ from the
    // record's listing of it (one changed, one the record lacks).
    let files = original["source_files"]
        .as_object()
        .expect("the record lists the source tree's entries");
    let mut names = files.keys().filter(|k| files[*k] != "dir");
    let (changed, extra) = (names.next().unwrap().clone(), names.next().unwrap().clone());
    verify_with(
        &|r| {
            r["source_tree_sha256"] = zeros.clone().into();
            r["source_files"][&changed] = zeros.clone().into();
            r["source_files"].as_object_mut().unwrap().remove(&extra);
        },
        &[
            "cannot rebuild from the record",
            "the source tree",
            &zeros,
            "2 entries differ",
            &format!("changed {changed}"),
            &format!("only here {extra}"),
        ],
    );
    // The builder image: it is not on this engine, so verify remakes it
    // from the recorded inputs; the remade image is another one, and the
    // error names both and how to bring the recorded one.
    let gone = format!("sha256:{}", "e".repeat(64));
    verify_with(
        &|r| r["builder"]["image_id"] = gone.clone().into(),
        &[
            "builder remade from inputs",
            &format!("not the recorded {gone}"),
            "docker load",
        ],
    );
    // A Debian package at a version the mirror does not serve: the real
    // apt-get in the builder is asked for exactly that version.
    verify_with(
        &|r| {
            r["system_packages"] = serde_json::json!([{
                "arch": "amd64", "kind": "deb",
                "name": "libyaml-0-2", "version": "0.0.0-hermetic-test",
            }])
        },
        &[
            "cannot rebuild from the record",
            "the system packages",
            "libyaml-0-2=0.0.0-hermetic-test",
        ],
    );
    // The recipe itself, changed after the release.
    let changed = scratch.path().join("hermetic.toml");
    let mut bytes = fs_err::read(recipe).unwrap();
    bytes.extend_from_slice(b"# changed after the release\n");
    fs_err::write(&changed, bytes).unwrap();
    let out = hermetic_in(
        project,
        &[
            "verify",
            "--recipe",
            changed.to_str().unwrap(),
            record.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("input missing")
            && stderr.contains(&original["recipe"]["sha256"].as_str().unwrap()[..16]),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn glibc_guard_refuses_a_newer_builder() {
    let Some(engine) = common::engine_or_skip("glibc_guard").await else {
        return;
    };
    let bullseye = common::builder_image(&engine, "2.31").await;
    // The catalog's 2.34 builder is upstream only (2.28 also has a local
    // toolchain builder to fall back on, see tests/toolchain.rs); with no
    // registry it cannot be had, and the error says how to make a local one.
    let out = hermetic(&["exec", "--glibc", "2.34", "--", "true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr.contains("manylinux_2_34"), "{stderr}");
    assert!(stderr.contains("hermetic images build --glibc"), "{stderr}");
    // Forcing the bullseye builder onto 2.28: refused, naming both versions.
    let out = hermetic(&[
        "exec",
        "--glibc",
        "2.28",
        "--builder-image",
        &bullseye,
        "--",
        "true",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr.contains("has glibc 2.31, newer than the requested baseline 2.28"),
        "{stderr}"
    );
    // The same image for its own baseline is fine.
    let out = hermetic(&[
        "exec",
        "--glibc",
        "2.31",
        "--builder-image",
        &bullseye,
        "--",
        "true",
    ]);
    assert!(out.status.success(), "{}", text(&out));
}

/// Fail early: with `--glibc 2.31,2.34` and no 2.34 builder to be had
/// (upstream only, no registry), the build stops before the 2.31 baseline
/// is fetched or built (it used to build 2.31 fully first), naming the
/// missing image, and leaves no output.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_builder_for_a_later_baseline_stops_the_build_before_any_work() {
    let Some(engine) = common::engine_or_skip("fail_early").await else {
        return;
    };
    common::builder_image(&engine, "2.31").await;
    let dir = tempfile::tempdir().unwrap();
    let recipe = six_recipe(dir.path(), SIX_SHA256);
    let out_dir = dir.path().join("dist");
    let out = build_recipe(&recipe, &out_dir, &["-v"], &["--glibc", "2.31,2.34"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr.contains("manylinux_2_34"), "{stderr}");
    assert!(
        !stderr.contains("fetching system packages and Python inputs"),
        "the 2.31 baseline was worked on before the missing 2.34 builder was found:\n{stderr}"
    );
    assert!(!out_dir.exists(), "output left behind");
}

/// A failed smoke test leaves evidence outside `--out`: the bundle as the
/// smoke test unpacked it, the smoke container's log and a summary, in a
/// directory the output names; `--out` stays empty.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_smoke_test_keeps_the_bundle_and_its_output_to_look_at() {
    let Some(engine) = common::engine_or_skip("smoke_evidence").await else {
        return;
    };
    common::builder_image(&engine, "2.31").await;
    let dir = tempfile::tempdir().unwrap();
    let recipe = six_recipe(dir.path(), SIX_SHA256);
    let text_of = fs_err::read_to_string(&recipe).unwrap();
    fs_err::write(
        &recipe,
        text_of.replace("expect = \"ok 1.16.0\"", "expect = \"ok 9.9\""),
    )
    .unwrap();
    let out_dir = dir.path().join("dist");
    let out = build_recipe(&recipe, &out_dir, &[], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let evidence = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("evidence kept in "))
        .and_then(|rest| rest.split(" (").next())
        .unwrap_or_else(|| panic!("no evidence line:\n{stdout}"));
    let evidence = PathBuf::from(evidence);
    assert!(
        evidence
            .join("bundle/sixdemo/python/runtime/bin/python3.11")
            .exists(),
        "{evidence:?}"
    );
    let summary = fs_err::read_to_string(evidence.join("smoke.txt")).unwrap();
    assert!(summary.contains("exit code: 0"), "{summary}");
    assert!(
        summary.contains("expected in its output: \"ok 9.9\""),
        "{summary}"
    );
    assert!(summary.contains("| ok 1.16.0"), "{summary}");
    let log = fs_err::read_to_string(evidence.join("smoke.log")).unwrap();
    assert!(log.contains("ok 1.16.0"), "{log}");
    assert!(!evidence.starts_with(&out_dir));
    assert_no_output(&out_dir);
    fs_err::remove_dir_all(&evidence).unwrap();
}

#[test]
fn malformed_recipe_is_an_error_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("hermetic.toml");
    fs_err::write(&recipe, "[app]\nname = \"x\"\nversion = \"1\"\nglibc = \"2.31\"\npython = \"3.11\"\nnmae = 1\n\n[smoke]\ncommand = [\"x\"]\n").unwrap();
    let out = hermetic(&["build", "-r", recipe.to_str().unwrap(), "--plan"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr.contains("hermetic.toml:6"), "{stderr}");
    assert!(stderr.contains("nmae"), "{stderr}");
}

/// The manylinux images the catalog pins for 2.17, 2.28 and 2.34 are RPM
/// based: a recipe with Debian names only is refused while planning, naming
/// the family and the image, and the shipped recipe, which gives both, plans
/// its RPM list; the local (Debian) builder takes the Debian one.
#[test]
fn plan_refuses_a_builder_family_the_recipe_does_not_cover() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("hermetic.toml");
    fs_err::write(
        &recipe,
        "[app]\nname = \"x\"\nversion = \"1\"\nglibc = \"2.31\"\npython = \"3.11\"\nsource_date_epoch = 1700000000\n\n\
         [build]\nsystem_packages = [\"libyaml-dev\"]\ncommands = [\"true\"]\n\
         collect = [{ from = \"hermetic.toml\", to = \"x\" }]\n\n[smoke]\ncommand = [\"true\"]\n",
    )
    .unwrap();
    let out = hermetic(&[
        "build",
        "-r",
        recipe.to_str().unwrap(),
        "--glibc",
        "2.28",
        "--plan",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "glibc 2.28",
        "manylinux_2_28",
        "rpm",
        "a plain list is deb",
        "--builder-source local",
    ] {
        assert!(stderr.contains(needle), "`{needle}` not in: {stderr}");
    }
    // The same recipe plans on the Debian builder of the same baseline.
    let out = hermetic(&[
        "build",
        "-r",
        recipe.to_str().unwrap(),
        "--glibc",
        "2.28",
        "--builder-source",
        "local",
        "--plan",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["targets"][0]["package_family"], "deb");

    let shipped = repo().join("recipes/pyyaml-libyaml/hermetic.toml");
    let out = hermetic(&[
        "build",
        "-r",
        shipped.to_str().unwrap(),
        "--glibc",
        "2.28,2.31",
        "--plan",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &plan["targets"];
    assert_eq!(t[0]["package_family"], "rpm", "{t}");
    assert_eq!(t[0]["system_packages"]["rpm"][0], "libyaml-devel", "{t}");
    assert_eq!(t[1]["package_family"], "deb", "{t}");
    let steps = t[0]["steps"].to_string();
    assert!(steps.contains("rpm: libyaml-devel"), "{steps}");
}

/// Embedding on a static CPython (every manylinux image) is refused while
/// planning when no local builder can stand in; with one, the resolver
/// decides once it knows whether the pull works.
#[test]
fn plan_refuses_embedding_on_a_static_python_builder_it_cannot_avoid() {
    let recipe = repo().join("recipes/embed-launcher/hermetic.toml");
    let recipe = recipe.to_str().unwrap();
    for args in [
        vec!["--glibc", "2.34"],
        vec!["--glibc", "2.28", "--builder-source", "upstream"],
    ] {
        let mut all = vec!["build", "-r", recipe, "--plan"];
        all.extend(&args);
        let out = hermetic(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        for needle in [
            "static CPython",
            "links libpython (build command 1)",
            "manylinux",
        ] {
            assert!(
                stderr.contains(needle),
                "{args:?}: `{needle}` not in {stderr}"
            );
        }
    }
    let out = hermetic(&["build", "-r", recipe, "--plan", "--glibc", "2.28"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn plan_json_describes_offline_and_network_steps() {
    let recipe = repo().join("recipes/pyyaml-libyaml/hermetic.toml");
    let out = hermetic(&[
        "build",
        "-r",
        recipe.to_str().unwrap(),
        "--glibc",
        "2.31,2.36",
        "--plan",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let targets = plan["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    for t in targets {
        let steps = t["steps"].as_array().unwrap();
        assert!(
            steps
                .iter()
                .any(|s| s["network"] == true && s["phase"] == "fetch")
        );
        assert!(
            steps
                .iter()
                .filter(|s| s["phase"] == "build")
                .all(|s| s["network"] == false)
        );
    }
    assert_eq!(
        targets[1]["archive_name"],
        "pyyaml-libyaml-6.0.3-linux-x86_64-glibc2.36.tar.gz"
    );
}

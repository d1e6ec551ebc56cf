//! Issue 12's proof: every shipped recipe builds on a manylinux-shaped
//! builder (static CPython under `/opt/_internal/cpython-3.11.2` behind the
//! `/opt/python/cp311-cp311` symlink, no build user, no `/hermetic`, an
//! entrypoint, no setuptools), reached the way a user with a registry reaches
//! the pinned manylinux images: through a catalog entry pinned by digest (a
//! user catalog, as an organisation mirroring them would write), pulled from
//! a registry (a loopback one here; no registry on the internet is reachable).
//!
//! The fixture image is made by `tests/fixtures/manylinux/registry-flow.sh`
//! from the local bullseye base, cached by the hash of its inputs.

// Tests fail by panicking: unwrap, expect and panic! are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{repo, text};

use std::path::Path;
use std::process::{Command, Output};

/// The fixture's CPython, where manylinux puts it.
const REAL_PREFIX: &str = "/opt/_internal/cpython-3.11.2";
const LINK_PREFIX: &str = "/opt/python/cp311-cp311";
/// Build paths that must be in no file of a bundle.
const BUILD_PATHS: &[&str] = &[
    "/hermetic/out",
    "/hermetic/src",
    "/hermetic/work",
    "/hermetic/inputs",
];

/// The loopback registry serving the fixture; stopped when dropped.
struct Registry {
    pid: String,
    dir: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(&self.pid).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Builds (or reuses) the fixture, pushes it to a fresh loopback registry
/// and returns its pinned reference with the running registry.
fn serve_fixture(base_id: &str) -> (String, String, Registry) {
    // Tests run in parallel: one of them builds the fixture (minutes of
    // CPython compile), the others then find it cached.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let script = repo().join("tests/fixtures/manylinux/registry-flow.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(base_id)
        .arg("1")
        .output()
        .expect("run registry-flow.sh");
    assert!(out.status.success(), "fixture flow failed\n{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= in\n{stdout}"))
            .to_string()
    };
    let registry = Registry {
        pid: field("registry_pid"),
        dir: field("registry_dir"),
    };
    (field("reference"), field("image_id"), registry)
}

fn hermetic(catalog: &Path, args: &[&str]) -> Output {
    Command::new(common::hermetic_bin())
        .arg("--catalog")
        .arg(catalog)
        .args(args)
        .output()
        .expect("run hermetic")
}

fn build(catalog: &Path, recipe: &str, out: &Path) -> Output {
    let recipe_path = repo().join("recipes").join(recipe).join("hermetic.toml");
    hermetic(
        catalog,
        &[
            "build",
            "--recipe",
            recipe_path.to_str().unwrap(),
            "--glibc",
            "2.31",
            "--out",
            out.to_str().unwrap(),
            "--rebuild",
            "--json",
        ],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn shipped_recipes_build_on_a_manylinux_builder_pinned_in_a_user_catalog() {
    let test = "shipped_recipes_build_on_a_manylinux_builder_pinned_in_a_user_catalog";
    let Some(engine) = common::engine_or_skip(test).await else {
        return;
    };
    let bullseye = common::base_image(&engine, "bullseye").await;
    common::base_image(&engine, "trixie").await;
    let (reference, image_id, _registry) = serve_fixture(&bullseye);

    // Forget the digest reference the flow's own pull added: hermetic must
    // pull the pinned image from the registry itself.
    let rmi = Command::new("docker")
        .args(["rmi", &reference])
        .output()
        .unwrap();
    assert!(rmi.status.success(), "{}", text(&rmi));
    assert!(
        engine.inspect_image(&reference).await.unwrap().is_none(),
        "{reference} still present"
    );

    let work = tempfile::tempdir().unwrap();
    let catalog = work.path().join("org-catalog.toml");
    fs_err::write(
        &catalog,
        format!(
            "# an organisation's mirror of manylinux_2_31\nformat = 1\n\n[[builder]]\n\
             glibc = \"2.31\"\nreference = \"{reference}\"\n"
        ),
    )
    .unwrap();

    // `images list` says where the entry comes from.
    let list = hermetic(&catalog, &["images", "list", "--json"]);
    assert!(list.status.success(), "{}", text(&list));
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == "builder" && r["glibc"] == "2.31")
        .unwrap();
    assert_eq!(row["origin"], catalog.to_str().unwrap(), "{row}");
    assert_eq!(row["source"], "upstream", "{row}");
    assert_eq!(row["reference"], reference.as_str(), "{row}");

    for recipe in ["qr-cli", "pyyaml-libyaml", "local-project"] {
        let out_dir = work.path().join(format!("out-{recipe}"));
        let out = build(&catalog, recipe, &out_dir);
        assert!(
            out.status.success(),
            "{recipe}: build failed\n{}",
            text(&out)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let target = &report["targets"][0];
        assert_eq!(target["smoke"]["passed"], true, "{recipe}: {target}");
        assert_eq!(target["smoke"]["suite"], "trixie");

        // The record pins the catalog's image, pulled by digest.
        let record_name = target["record"].as_str().unwrap();
        let record: serde_json::Value =
            serde_json::from_slice(&fs_err::read(out_dir.join(record_name)).unwrap()).unwrap();
        assert_eq!(record["builder"]["reference"], reference.as_str());
        assert_eq!(record["builder"]["image_id"], image_id.as_str());

        // Moved elsewhere: no builder prefix or build path outside ELF
        // files, the real interpreter version recorded, pip runs.
        let moved = work.path().join(format!("moved {recipe}"));
        fs_err::create_dir_all(&moved).unwrap();
        let archive = out_dir.join(target["archive"].as_str().unwrap());
        let reader = hermetic::archive::open_archive(&archive).unwrap();
        tar::Archive::new(reader).unpack(&moved).unwrap();
        let top = moved.join(report["name"].as_str().unwrap());
        let hits = common::find_needles(&top, BUILD_PATHS, &[REAL_PREFIX, LINK_PREFIX]);
        assert!(hits.is_empty(), "{recipe}: builder paths left: {hits:#?}");
        let meta: serde_json::Value =
            serde_json::from_slice(&fs_err::read(top.join("share/hermetic/bundle.json")).unwrap())
                .unwrap();
        assert_eq!(meta["python"]["version"], "3.11.2", "{recipe}: {meta}");
        assert_eq!(
            meta["python"]["source_url"],
            "https://www.python.org/ftp/python/3.11.2/Python-3.11.2.tar.xz",
            "{recipe}: {meta}"
        );
        let runtime = top.join("python/runtime");
        assert!(
            !fs_err::symlink_metadata(&runtime)
                .unwrap()
                .file_type()
                .is_symlink(),
            "{recipe}: the runtime is a symlink"
        );
        let pip = Command::new(runtime.join("bin/pip3"))
            .arg("--version")
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        assert!(pip.status.success(), "{recipe}: moved pip3\n{}", text(&pip));
        assert!(
            String::from_utf8_lossy(&pip.stdout).contains(moved.to_str().unwrap()),
            "{recipe}: {}",
            text(&pip)
        );
    }

    // Embedding needs a shared libpython: refused before anything is
    // fetched, saying why and what to do, and nothing is written.
    let out_dir = work.path().join("out-embed");
    let out = build(&catalog, "embed-launcher", &out_dir);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("static CPython"), "{stderr}");
    assert!(stderr.contains("links libpython"), "{stderr}");
    assert!(stderr.contains("hermetic images build"), "{stderr}");
    assert!(
        !out_dir.exists(),
        "refused build left {}",
        out_dir.display()
    );

    // The user catalog does not say the image's package family: the build
    // asks the image (this one has apt) and refuses a recipe that lists
    // RPM packages only, before fetching anything.
    let app = work.path().join("rpm-only");
    fs_err::create_dir_all(&app).unwrap();
    fs_err::copy(
        repo().join("recipes/qr-cli/requirements.txt"),
        app.join("requirements.txt"),
    )
    .unwrap();
    fs_err::write(
        app.join("hermetic.toml"),
        "[app]\nname = \"rpm-only\"\nversion = \"1\"\nglibc = \"2.31\"\npython = \"3.11\"\n\
         source_date_epoch = 1700000000\n\n[install]\nrequirements = \"requirements.txt\"\n\
         launchers = [\"qr\"]\n\n[build]\nsystem_packages = { rpm = [\"libyaml-devel\"] }\n\n\
         [smoke]\ncommand = [\"qr\", \"--help\"]\n",
    )
    .unwrap();
    let out_dir = work.path().join("out-rpm-only");
    let recipe = app.join("hermetic.toml");
    let out = hermetic(
        &catalog,
        &[
            "build",
            "--recipe",
            recipe.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        reference.as_str(),
        "installs deb packages",
        "no deb list",
        "rpm only",
    ] {
        assert!(stderr.contains(needle), "`{needle}` not in: {stderr}");
    }
    assert!(
        !out_dir.exists(),
        "refused build left {}",
        out_dir.display()
    );
}

/// A catalog in `$HERMETIC_HOME` is found without `--catalog`, and a named
/// one that does not exist is an error naming it.
#[tokio::test(flavor = "multi_thread")]
async fn user_catalog_is_found_in_hermetic_home_and_a_missing_named_one_is_an_error() {
    let test = "user_catalog_is_found_in_hermetic_home_and_a_missing_named_one_is_an_error";
    if common::engine_or_skip(test).await.is_none() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let reference = format!(
        "registry.example/pypa/manylinux_2_24@sha256:{}",
        "ab".repeat(32)
    );
    fs_err::write(
        home.path().join("catalog.toml"),
        format!("format = 1\n[[builder]]\nglibc = \"2.24\"\nreference = \"{reference}\"\n"),
    )
    .unwrap();
    let out = Command::new(common::hermetic_bin())
        .args(["images", "list", "--json"])
        .env("HERMETIC_HOME", home.path())
        .env_remove("HERMETIC_CATALOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["glibc"] == "2.24")
        .unwrap_or_else(|| panic!("no 2.24 row: {rows}"));
    assert_eq!(row["reference"], reference.as_str());
    assert_eq!(
        row["origin"],
        home.path().join("catalog.toml").to_str().unwrap()
    );
    assert_eq!(row["present"], false);

    let missing = home.path().join("no-such-catalog.toml");
    let out = Command::new(common::hermetic_bin())
        .arg("--catalog")
        .arg(&missing)
        .args(["build", "--glibc", "2.31", "--plan"])
        .current_dir(repo().join("recipes/qr-cli"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-catalog.toml"), "{stderr}");
}

fn skopeo(args: &[&str]) -> Output {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(out.status.success(), "skopeo {args:?}\n{}", text(&out));
    out
}

/// A copy of the tar `from` with one byte flipped in the middle of its
/// largest entry.
fn damaged_copy(from: &Path, to: &Path) -> String {
    let mut largest = (String::new(), 0u64);
    let mut archive = tar::Archive::new(fs_err::File::open(from).unwrap());
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        if e.header().size().unwrap() > largest.1 {
            largest = (
                e.path().unwrap().to_string_lossy().into_owned(),
                e.header().size().unwrap(),
            );
        }
    }
    let mut out = tar::Builder::new(fs_err::File::create(to).unwrap());
    let mut archive = tar::Archive::new(fs_err::File::open(from).unwrap());
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if name == largest.0 {
            let middle = data.len() / 2;
            data[middle] ^= 0x55;
        }
        let mut header = e.header().clone();
        out.append_data(&mut header, &name, data.as_slice())
            .unwrap();
    }
    out.finish().unwrap();
    largest.0
}

/// Issue 12, air-gapped users: a builder carried in as an archive is loaded
/// only when it is an image the catalog pins — by manifest digest for an OCI
/// archive (every blob checked), by image ID for a docker-save archive when
/// the entry pins one — and then builds with no registry reachable.
#[tokio::test(flavor = "multi_thread")]
async fn a_carried_in_builder_archive_is_loaded_only_when_the_catalog_pins_it() {
    let test = "a_carried_in_builder_archive_is_loaded_only_when_the_catalog_pins_it";
    let Some(engine) = common::engine_or_skip(test).await else {
        return;
    };
    let bullseye = common::base_image(&engine, "bullseye").await;
    common::base_image(&engine, "trixie").await;
    let (reference, image_id, registry) = serve_fixture(&bullseye);
    let work = tempfile::tempdir().unwrap();

    // The organisation mirrors the image as OCI and pins that digest; the
    // archive keeps the manifest as the registry serves it.
    let (host, _) = reference.split_once('/').unwrap();
    let digest_file = work.path().join("digest");
    skopeo(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--format",
        "oci",
        "--digestfile",
        digest_file.to_str().unwrap(),
        &format!("docker://{reference}"),
        &format!("docker://{host}/mirror/manylinux:oci"),
    ]);
    let digest = fs_err::read_to_string(&digest_file).unwrap();
    let pinned = format!("{host}/mirror/manylinux@{}", digest.trim());
    let oci = work.path().join("manylinux.oci.tar");
    skopeo(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--preserve-digests",
        &format!("docker://{pinned}"),
        &format!("oci-archive:{}", oci.display()),
    ]);
    // From here on no registry answers.
    drop(registry);

    let catalog = work.path().join("catalog.toml");
    let write_catalog = |reference: &str, extra: &str| {
        fs_err::write(
            &catalog,
            format!(
                "format = 1\n[[builder]]\nglibc = \"2.31\"\nreference = \"{reference}\"\n{extra}"
            ),
        )
        .unwrap();
    };

    // An image the catalog does not pin is refused, naming what it holds.
    write_catalog(&reference, "");
    let out = hermetic(&catalog, &["images", "load", oci.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no builder the catalog pins"), "{stderr}");
    assert!(stderr.contains(digest.trim()), "{stderr}");

    // A damaged blob is refused, naming it; nothing is loaded or recorded.
    write_catalog(&pinned, "");
    let damaged = work.path().join("damaged.oci.tar");
    let blob = damaged_copy(&oci, &damaged);
    let out = hermetic(&catalog, &["images", "load", damaged.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let blob_hex = blob.rsplit('/').next().unwrap();
    assert!(
        stderr.contains("damaged") && stderr.contains(blob_hex),
        "{stderr}"
    );
    let list = hermetic(&catalog, &["images", "list", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let row = |rows: &serde_json::Value| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["role"] == "builder" && r["glibc"] == "2.31")
            .cloned()
            .unwrap()
    };
    assert_eq!(row(&rows)["present"], false, "{rows}");

    // The intact archive loads, checked by its manifest digest.
    let out = hermetic(
        &catalog,
        &["images", "load", oci.to_str().unwrap(), "--json"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["format"], "oci");
    assert_eq!(report["reference"], pinned.as_str());
    assert_eq!(report["checked"], format!("manifest {}", digest.trim()));
    let loaded_id = report["image_id"].as_str().unwrap().to_string();
    let list = hermetic(&catalog, &["images", "list", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(row(&rows)["present"], true, "{rows}");
    assert_eq!(row(&rows)["image_id"], loaded_id.as_str(), "{rows}");

    // And a build through the catalog uses it with no registry.
    let out_dir = work.path().join("out");
    let out = build(&catalog, "qr-cli", &out_dir);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let target = &report["targets"][0];
    assert_eq!(target["smoke"]["passed"], true, "{target}");
    let record: serde_json::Value = serde_json::from_slice(
        &fs_err::read(out_dir.join(target["record"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    assert_eq!(record["builder"]["reference"], pinned.as_str());
    assert_eq!(record["builder"]["image_id"], loaded_id.as_str());

    // A docker-save archive has no manifest digest: refused with what to do
    // unless the entry pins the image ID, then loaded.
    let saved = work.path().join("manylinux.docker.tar");
    let out = Command::new("docker")
        .args(["save", "-o", saved.to_str().unwrap(), &image_id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    write_catalog(&reference, "");
    let out = hermetic(&catalog, &["images", "load", saved.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("image ID {image_id}")), "{stderr}");
    assert!(stderr.contains("--preserve-digests"), "{stderr}");
    write_catalog(&reference, &format!("image_id = \"{image_id}\"\n"));
    let out = hermetic(
        &catalog,
        &["images", "load", saved.to_str().unwrap(), "--json"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["format"], "docker");
    assert_eq!(report["image_id"], image_id.as_str());
}

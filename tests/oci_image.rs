//! `hermetic image` against real tools: the layout is read by skopeo and
//! umoci, two builds give the same manifest digest, a new app version
//! changes only the app layer, and `--load` gives an image the engine runs.

// Tests fail by panicking: unwrap, expect and panic! are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod oci_fixture;

use std::process::Command;

use hermetic::engine::ExecSpec;
use hermetic::oci::{self, ImageSettings, LayerRole};
use oci_fixture::{make_bundle, run};

fn settings(bundle: &std::path::Path, layout: &std::path::Path) -> ImageSettings {
    ImageSettings {
        base: Some("trixie".into()),
        oci_layout: Some(layout.to_path_buf()),
        revision: Some("0123456789abcdef".into()),
        source: Some("https://example.invalid/demo".into()),
        ..ImageSettings::new(bundle)
    }
}

#[tokio::test]
async fn layout_is_reproducible_and_read_by_skopeo_and_umoci() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = make_bundle(tmp.path(), "demo", "1.0.0", "hello");
    let a = oci::image(&settings(&bundle, &tmp.path().join("a")), None)
        .await
        .expect("first image");
    let b = oci::image(&settings(&bundle, &tmp.path().join("b")), None)
        .await
        .expect("second image");
    assert_eq!(
        a.manifest_digest, b.manifest_digest,
        "same inputs, same digest"
    );
    assert_eq!(
        a.layers.iter().map(|l| l.role).collect::<Vec<_>>(),
        [
            LayerRole::Base,
            LayerRole::Runtime,
            LayerRole::Deps,
            LayerRole::App
        ]
    );
    // The base layer is the pinned rootfs, compressed: its diff_id is the pin.
    assert_eq!(a.layers[0].diff_id, format!("sha256:{}", a.base_sha256));
    assert_eq!(
        a.layers[0].media_type,
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert!(
        a.layers[0].size < 80 << 20,
        "base layer {} bytes",
        a.layers[0].size
    );
    assert!(a.sbom_manifest.is_some());
    // Rebuilding over an existing layout replaces it atomically.
    let again = oci::image(&settings(&bundle, &tmp.path().join("a")), None)
        .await
        .unwrap();
    assert_eq!(again.manifest_digest, a.manifest_digest);
    assert!(
        !std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with('.')),
        "no staging or old directories left behind"
    );

    // skopeo reads the layout (by its ref name) and sees our config.
    let dir = tmp.path().join("a");
    let inspect =
        run(Command::new("skopeo").args(["inspect", &format!("oci:{}:1.0.0", dir.display())]));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 4);
    assert_eq!(v["Labels"]["org.opencontainers.image.version"], "1.0.0");
    assert_eq!(
        v["Labels"]["org.opencontainers.image.base.digest"],
        format!("sha256:{}", a.base_sha256)
    );
    assert_eq!(v["Created"], "2023-11-14T22:13:20Z");
    let config = run(Command::new("skopeo").args([
        "inspect",
        "--config",
        &format!("oci:{}:1.0.0", dir.display()),
    ]));
    let c: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(c["config"]["Entrypoint"][0], "/opt/demo/demo");
    assert_eq!(c["config"]["User"], "65532:65532");

    // umoci lists the tag and unpacks a runnable tree.
    let ls = run(Command::new("umoci").args(["ls", "--layout"]).arg(&dir));
    assert_eq!(ls.trim(), "1.0.0");
    let unpacked = tmp.path().join("unpacked");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:1.0.0", dir.display()))
        .arg(&unpacked));
    let rootfs = unpacked.join("rootfs");
    assert!(rootfs.join("usr/bin/sh").exists() || rootfs.join("bin/sh").exists());
    let launcher = fs_err::read_to_string(rootfs.join("opt/demo/demo")).unwrap();
    assert!(launcher.contains("hello"));
    assert!(
        rootfs
            .join("opt/demo/python/runtime/lib/python3.11/site-packages/demo/__init__.py")
            .is_file()
    );

    // A new app version: only the app layer (and config/manifest) change.
    let tmp2 = tempfile::tempdir().unwrap();
    let bundle2 = make_bundle(tmp2.path(), "demo", "1.0.0", "bonjour");
    let c2 = oci::image(&settings(&bundle2, &tmp2.path().join("c")), None)
        .await
        .unwrap();
    assert_ne!(c2.manifest_digest, a.manifest_digest);
    for (x, y) in a.layers.iter().zip(&c2.layers) {
        if x.role == LayerRole::App {
            assert_ne!(x.digest, y.digest);
        } else {
            assert_eq!(x.digest, y.digest, "{:?} layer must not change", x.role);
        }
    }

    // A bundle archive gives the same image as its directory.
    let tgz = tmp.path().join("demo.tar.gz");
    let file = fs_err::File::create(&tgz).unwrap();
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    hermetic::archive::write_tree(
        &bundle,
        "demo",
        gz,
        &hermetic::archive::ArchiveOptions {
            source_date_epoch: 1_700_000_000,
            compression: hermetic::archive::Compression::None,
        },
    )
    .unwrap();
    let from_tgz = oci::image(&settings(&tgz, &tmp.path().join("d")), None)
        .await
        .unwrap();
    assert_eq!(from_tgz.manifest_digest, a.manifest_digest);
}

#[tokio::test]
async fn base_too_old_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = make_bundle(tmp.path(), "demo", "1.0.0", "hello");
    let meta_path = bundle.join(hermetic::bundle::META_PATH);
    let text = fs_err::read_to_string(&meta_path)
        .unwrap()
        .replace("\"2.31\"", "\"2.39\"");
    fs_err::write(&meta_path, text).unwrap();
    let err = oci::image(
        &ImageSettings {
            base: Some("bullseye".into()),
            ..ImageSettings::new(&bundle)
        },
        None,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("needs glibc 2.39"), "{err}");
    assert!(err.help().is_some());
}

#[tokio::test]
async fn load_then_run_the_launcher() {
    let Some(engine) = common::engine_or_skip("oci load").await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let bundle = make_bundle(tmp.path(), "demo-load", "2.0.0", "loaded");
    let report = oci::image(
        &ImageSettings {
            base: Some("trixie".into()),
            load: true,
            ..ImageSettings::new(&bundle)
        },
        Some(&engine),
    )
    .await
    .expect("image --load");
    assert_eq!(report.loaded.as_deref(), Some("demo-load:2.0.0"));
    let info = engine
        .inspect_image("demo-load:2.0.0")
        .await
        .unwrap()
        .expect("loaded image present");
    assert_eq!(info.id, report.config_digest, "image ID = config digest");
    let container = engine
        .create_container(&common::test_container("demo-load:2.0.0", "oci-load-test"))
        .await
        .unwrap();
    let out = container
        .exec(&ExecSpec {
            cmd: vec!["demo-load".into()],
            user: None,
            workdir: None,
            env: vec![],
        })
        .await
        .unwrap();
    container.remove().await;
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), "loaded from 65532");
    assert!(engine.remove_unused_image("demo-load:2.0.0").await.unwrap());
}

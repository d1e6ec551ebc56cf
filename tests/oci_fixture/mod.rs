//! A tiny bundle for the `oci_*` tests: a POSIX sh launcher (no Python
//! needed), a fake runtime and site-packages so that every layer exists,
//! `bundle.json` and an SBOM.

#![allow(dead_code)]
// Tests fail by panicking: unwrap, expect and panic! are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hermetic::bundle::meta::{BuilderImage, PythonRuntime};
use hermetic::bundle::{BundleMeta, META_PATH};

/// Writes bundle `name` under `parent`; `greeting` is what the launcher
/// prints (change it to make a "new app version").
pub fn make_bundle(parent: &Path, name: &str, version: &str, greeting: &str) -> PathBuf {
    let root = parent.join(name);
    let site = root.join("python/runtime/lib/python3.11/site-packages");
    for d in [
        "python/runtime/bin",
        "python/runtime/lib/python3.11",
        "lib",
        "share/sbom",
        "share/hermetic",
    ] {
        fs_err::create_dir_all(root.join(d)).unwrap();
    }
    fs_err::create_dir_all(site.join("dep")).unwrap();
    fs_err::create_dir_all(site.join(format!("{name}-{version}.dist-info"))).unwrap();
    fs_err::create_dir_all(site.join(name)).unwrap();
    fs_err::write(
        root.join("python/runtime/bin/python3.11"),
        b"not really python",
    )
    .unwrap();
    fs_err::write(
        root.join("python/runtime/lib/python3.11/os.py"),
        b"# stdlib\n",
    )
    .unwrap();
    fs_err::write(site.join("dep/__init__.py"), b"# a dependency\n").unwrap();
    // Incompressible, so the deps layer is big enough to be cut mid-upload.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: Vec<u8> = (0..256_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    fs_err::write(root.join("lib/libdep-0123abcd.so.1"), noise).unwrap();
    fs_err::write(
        site.join(format!("{name}/__init__.py")),
        greeting.as_bytes(),
    )
    .unwrap();
    fs_err::write(
        site.join(format!("{name}-{version}.dist-info/RECORD")),
        format!("{name}/__init__.py,,\n{name}-{version}.dist-info/RECORD,,\n"),
    )
    .unwrap();
    let launcher = root.join(name);
    fs_err::write(
        &launcher,
        format!("#!/bin/sh\necho \"{greeting} from $(id -u)\"\n"),
    )
    .unwrap();
    fs_err::set_permissions(&launcher, std::fs::Permissions::from_mode(0o755)).unwrap();
    fs_err::write(
        root.join(format!("share/sbom/{name}.cdx.json")),
        format!(
            "{{\"bomFormat\":\"CycloneDX\",\"specVersion\":\"1.5\",\"components\":[{{\"name\":\"{name}\",\"version\":\"{version}\"}}]}}\n"
        ),
    )
    .unwrap();
    let meta = BundleMeta {
        format: BundleMeta::FORMAT,
        name: name.into(),
        version: version.into(),
        glibc: "2.31".parse().unwrap(),
        launchers: vec![name.into()],
        python: PythonRuntime {
            version: "3.11.2".into(),
            source_url: None,
            source_sha256: None,
            path: "python/runtime".into(),
        },
        builder: BuilderImage {
            reference: "hermetic/builder:test".into(),
            image_id: "sha256:0".into(),
            distro: "debian-11".into(),
        },
        inputs: vec![],
        system_packages: vec![],
        vendored_libs: vec![],
        native_files: vec![],
        source_date_epoch: 1_700_000_000,
        source_tree_sha256: None,
        recipe_sha256: "0".repeat(64),
    };
    fs_err::write(root.join(META_PATH), meta.to_canonical_json().unwrap()).unwrap();
    root
}

/// Runs a command, panicking with its output on failure; returns stdout.
pub fn run(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

//! The engine layer against the real engine: container round trip, labels
//! and cleanup on interrupt, and the errors a user sees for a bad socket.

// Tests fail by panicking: unwrap, expect and panic! are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hermetic::engine::ExecSpec;

/// Writes a small tree with the cases that break naive copies: nested dirs,
/// an empty file, binary content, an executable, a symlink, a long name.
fn make_tree(root: &Path) {
    fs_err::create_dir_all(root.join("a/b/c")).unwrap();
    fs_err::write(root.join("empty"), b"").unwrap();
    let binary: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs_err::write(root.join("a/b/c/blob.bin"), &binary).unwrap();
    fs_err::write(root.join("a/run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs_err::set_permissions(
        root.join("a/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink("b/c/blob.bin", root.join("a/link")).unwrap();
    fs_err::write(root.join(format!("a/{}", "n".repeat(150))), b"long name").unwrap();
}

/// Every file's relative path, kind, executable bit and content.
fn snapshot(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.unwrap();
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap()
            .display()
            .to_string();
        let meta = entry.path().symlink_metadata().unwrap();
        let what = if meta.file_type().is_symlink() {
            format!(
                "link:{}",
                fs_err::read_link(entry.path()).unwrap().display()
            )
        } else if meta.is_dir() {
            "dir".to_string()
        } else {
            let exec = meta.permissions().mode() & 0o111 != 0;
            format!(
                "file:{exec}:{}",
                hex::encode(sha2::Sha256::digest(fs_err::read(entry.path()).unwrap()))
            )
        };
        out.push((rel, what));
    }
    out
}

use sha2::Digest;

#[tokio::test]
async fn round_trip_through_a_container_is_byte_identical() {
    let Some(engine) = common::engine_or_skip("round_trip").await else {
        return;
    };
    let image = common::base_image(&engine, "trixie").await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    make_tree(&src);

    let container = engine
        .create_container(&common::test_container(&image, "test-roundtrip"))
        .await
        .unwrap();
    let result = async {
        container.copy_dir_in(&src, "/work/in").await?;
        let out = container
            .exec(&ExecSpec::shell(
                "cp -a /work/in /work/out && ls -R /work/out | wc -l",
            ))
            .await?;
        assert_eq!(out.exit_code, 0, "{:?}", out.tail);
        let tar = work.path().join("out.tar");
        container.copy_out("/work/out", &tar).await?;
        Ok::<_, hermetic::engine::EngineError>(tar)
    }
    .await;
    container.remove().await;
    let tar = result.unwrap();

    let dest = work.path().join("dest");
    fs_err::create_dir_all(&dest).unwrap();
    tar::Archive::new(fs_err::File::open(&tar).unwrap())
        .unpack(&dest)
        .unwrap();
    assert_eq!(snapshot(&src), snapshot(&dest.join("out")));
}

#[tokio::test]
async fn exec_reports_exit_code_and_output() {
    let Some(engine) = common::engine_or_skip("exec_exit_code").await else {
        return;
    };
    let image = common::base_image(&engine, "trixie").await;
    let container = engine
        .create_container(&common::test_container(&image, "test-exec"))
        .await
        .unwrap();
    let ok = container
        .exec(&ExecSpec::shell("echo out; echo err >&2; exit 7"))
        .await;
    let offline = container
        .exec(&ExecSpec::shell(
            "cat /sys/class/net/*/operstate 2>/dev/null; ls /sys/class/net",
        ))
        .await;
    let whoami = container
        .exec(&ExecSpec::shell("id -u").user("1000:1000"))
        .await;
    container.remove().await;
    let ok = ok.unwrap();
    assert_eq!(ok.exit_code, 7);
    assert_eq!(ok.stdout, "out\n");
    assert!(ok.tail.contains(&"err".to_string()), "{:?}", ok.tail);
    // network_mode none: only the loopback interface exists.
    assert_eq!(offline.unwrap().stdout.lines().last(), Some("lo"));
    assert_eq!(whoami.unwrap().stdout.trim(), "1000");
    assert!(
        engine
            .labelled_containers(Some("test-exec"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn missing_path_in_container_is_named() {
    let Some(engine) = common::engine_or_skip("missing_path").await else {
        return;
    };
    let image = common::base_image(&engine, "trixie").await;
    let container = engine
        .create_container(&common::test_container(&image, "test-missing"))
        .await
        .unwrap();
    let err = container.read_file("/no/such/file", 1024).await;
    container.remove().await;
    let err = err.unwrap_err().to_string();
    assert!(err.contains("/no/such/file"), "{err}");
}

#[tokio::test]
async fn sigint_removes_the_running_container() {
    let Some(engine) = common::engine_or_skip("sigint_cleanup").await else {
        return;
    };
    let image = common::base_image(&engine, "trixie").await;
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::hermetic_bin())
        .args([
            "exec",
            "--glibc",
            "2.41",
            "--builder-image",
            &image,
            "--",
            "sleep",
            "300",
        ])
        .env("HERMETIC_HOME", home.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let build_id = format!("exec-{}", child.id());
    // Drained as it comes (a full pipe would stall hermetic), shown on failure.
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let drain = {
        let (mut pipe, sink) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = std::io::Read::read(&mut pipe, &mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let said = || String::from_utf8_lossy(&stderr.lock().unwrap()).into_owned();

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = engine.labelled_containers(Some(&build_id)).await.unwrap();
        // The probe container (glibc check) comes and goes; wait for the
        // exec container, which is the one that stays.
        if !found.is_empty() && child.try_wait().unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            if !engine
                .labelled_containers(Some(&build_id))
                .await
                .unwrap()
                .is_empty()
            {
                break;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "hermetic exec exited early: {}",
            said()
        );
        assert!(
            Instant::now() < deadline,
            "no labelled container appeared; hermetic said: {}",
            said()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    drain.join().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "exit status {status:?}: {}",
        said()
    );
    assert!(
        said().len() < 4096,
        "exec streams the command's output only, not the resolver's probes: {}",
        said()
    );
    let left = engine.labelled_containers(Some(&build_id)).await.unwrap();
    assert!(left.is_empty(), "containers left behind: {left:?}");
}

#[test]
fn wrong_engine_socket_is_one_clear_error_fast() {
    let started = Instant::now();
    let out = Command::new(common::hermetic_bin())
        .args([
            "--engine-socket",
            "/nonexistent/engine.sock",
            "images",
            "list",
        ])
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: ") && first.contains("/nonexistent/engine.sock"),
        "{stderr}"
    );
    assert!(
        stderr.lines().filter(|l| l.starts_with("error")).count() == 1,
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn engine_that_never_answers_times_out_within_two_seconds() {
    // A socket that accepts connections and then says nothing.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("silent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(4) {
            held.push(stream);
        }
        std::thread::sleep(Duration::from_secs(5));
    });
    let started = Instant::now();
    let out = Command::new(common::hermetic_bin())
        .args(["--engine-socket", sock.to_str().unwrap(), "gc"])
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(elapsed < Duration::from_millis(2500), "took {elapsed:?}");
    assert!(stderr.contains("did not answer"), "{stderr}");
    drop(holder);
}

#[test]
fn refused_tcp_engine_is_a_clear_error() {
    let out = Command::new(common::hermetic_bin())
        .args(["gc"])
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("tcp://127.0.0.1:1"), "{stderr}");
    assert!(stderr.contains("help: start an engine"), "{stderr}");
}

#[tokio::test]
async fn copy_in_keeps_the_directory_writable_for_the_container_user() {
    let Some(engine) = common::engine_or_skip("copy_in_user").await else {
        return;
    };
    let image = common::base_image(&engine, "trixie").await;
    let mut s = common::test_container(&image, "test-copy-user");
    s.user = Some("1000:1000".into());
    let container = engine.create_container(&s).await.unwrap();
    let result = async {
        let who = container.exec(&ExecSpec::shell("id -u")).await?;
        assert_eq!(who.stdout.trim(), "1000");
        container.mkdir("/tmp/drop").await?;
        let before = container
            .exec(&ExecSpec::shell("ls -ldn /tmp/drop"))
            .await?;
        container
            .put_file("/tmp/drop", "file.txt", b"hi\n", 0o644)
            .await?;
        let out = container
            .exec(&ExecSpec::shell(
                "ls -lan /tmp/drop; mkdir /tmp/drop/sub && echo ok",
            ))
            .await?;
        Ok::<_, hermetic::engine::EngineError>((before, out))
    }
    .await;
    container.remove().await;
    let (before, out) = result.unwrap();
    assert_eq!(
        out.exit_code, 0,
        "before: {:?} after: {:?}",
        before.stdout, out.tail
    );
    assert!(out.stdout.ends_with("ok\n"), "{}", out.stdout);
}

/// A tree made under `umask 077` (directories 0700, files 0600, owned by
/// root) is readable by the unprivileged build user once copied in.
#[tokio::test]
async fn copy_in_does_not_carry_the_host_umask() {
    use std::os::unix::fs::PermissionsExt;
    let Some(engine) = common::engine_or_skip("copy_in_umask").await else {
        return;
    };
    let image = common::base_image(&engine, "trixie").await;
    let host = tempfile::tempdir().unwrap();
    let sub = host.path().join("src/pkg");
    fs_err::create_dir_all(&sub).unwrap();
    fs_err::write(sub.join("mod.py"), b"x = 1\n").unwrap();
    fs_err::write(sub.join("tool"), b"#!/bin/sh\necho tool\n").unwrap();
    for (path, mode) in [
        (host.path().join("src"), 0o700),
        (sub.clone(), 0o700),
        (sub.join("mod.py"), 0o600),
        (sub.join("tool"), 0o700),
    ] {
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let mut s = common::test_container(&image, "test-copy-umask");
    s.user = Some("1000:1000".into());
    let container = engine.create_container(&s).await.unwrap();
    let result = async {
        container.copy_dir_in(host.path(), "/tmp/ctx").await?;
        container
            .exec(&ExecSpec::shell(
                "cat /tmp/ctx/src/pkg/mod.py && /tmp/ctx/src/pkg/tool && stat -c '%a %n' /tmp/ctx/src /tmp/ctx/src/pkg/mod.py /tmp/ctx/src/pkg/tool",
            ))
            .await
    }
    .await;
    container.remove().await;
    let out = result.unwrap();
    assert_eq!(out.exit_code, 0, "{:?}", out.tail);
    assert_eq!(
        out.stdout,
        "x = 1\ntool\n755 /tmp/ctx/src\n644 /tmp/ctx/src/pkg/mod.py\n755 /tmp/ctx/src/pkg/tool\n"
    );
}

/// Runs `hermetic gc <extra> --json`, which must succeed; its report.
fn gc_json(extra: &[&str]) -> serde_json::Value {
    let out = Command::new(common::hermetic_bin())
        .arg("gc")
        .args(extra)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn gc_removes_leftovers_of_killed_processes_but_not_live_ones() {
    let Some(engine) = common::engine_or_skip("gc_leftovers").await else {
        return;
    };
    let image = common::base_image(&engine, "trixie").await;
    let mut child = Command::new(common::hermetic_bin())
        .args([
            "exec",
            "--glibc",
            "2.41",
            "--builder-image",
            &image,
            "--",
            "sleep",
            "300",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let build_id = format!("exec-{}", child.id());
    common::wait_for_labelled(&engine, &build_id, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Live: gc keeps it.
    gc_json(&[]);
    assert!(
        !engine
            .labelled_containers(Some(&build_id))
            .await
            .unwrap()
            .is_empty(),
        "gc removed a live build's container"
    );
    // kill -9: no cleanup runs, the container is a leftover; gc removes it.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !engine
            .labelled_containers(Some(&build_id))
            .await
            .unwrap()
            .is_empty()
    );
    gc_json(&[]);
    assert!(
        engine
            .labelled_containers(Some(&build_id))
            .await
            .unwrap()
            .is_empty(),
        "leftover not removed"
    );
}

/// `gc --images` removes derived builder images, but never one a container
/// still uses. (It removes every derived image on the engine: the build
/// tests, in another test binary, remake theirs when they next run.)
#[tokio::test]
async fn gc_images_removes_derived_builders_not_in_use() {
    let Some(engine) = common::engine_or_skip("gc_images").await else {
        return;
    };
    let base = common::base_image(&engine, "trixie").await;
    let tag = format!("hermetic/derived:gc-test-{}", std::process::id());
    let maker = engine
        .create_container(&common::test_container(&base, "gc-images-test"))
        .await
        .unwrap();
    let (key, value) = hermetic::build::fetch::DERIVED_IMAGE_LABEL;
    let labels = std::collections::HashMap::from([
        (key.to_string(), value.to_string()),
        ("io.hermetic.packages".to_string(), "[]".to_string()),
    ]);
    let committed = maker.commit(&tag, labels).await;
    maker.remove().await;
    committed.unwrap();
    let gc = || gc_json(&["--images"]);
    let named = |report: &serde_json::Value, field: &str| {
        report[field]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t.as_str() == Some(tag.as_str()))
    };

    // In use by a container: kept, and said so.
    let user = engine
        .create_container(&common::test_container(&tag, "gc-images-test"))
        .await
        .unwrap();
    let report = gc();
    assert!(named(&report, "kept_images_in_use"), "{report}");
    assert!(engine.inspect_image(&tag).await.unwrap().is_some());

    // No longer in use: removed.
    user.remove().await;
    let report = gc();
    assert!(named(&report, "removed_images"), "{report}");
    assert!(engine.inspect_image(&tag).await.unwrap().is_none());
}

#[tokio::test]
async fn removing_a_multi_tagged_image_by_id_is_refused_not_an_error() {
    let Some(engine) =
        common::engine_or_skip("removing_a_multi_tagged_image_by_id_is_refused_not_an_error").await
    else {
        return;
    };
    common::assert_multi_tag_removal_is_refused(&engine).await;
}

//! `hermetic push` against a real registry (Debian's `docker-registry`,
//! distribution 2.8, htpasswd auth) on a loopback port, behind a small TCP
//! proxy that counts the bytes sent and can drop connections: wrong password,
//! Docker config and credential-helper auth, a dropped connection retried, a
//! push cut off midway and resumed without re-sending what arrived, a
//! cross-repository mount, the SBOM through the tag fallback (read back with
//! skopeo), and a pull + run through the engine.

// Tests fail by panicking: unwrap, expect and panic! are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod oci_fixture;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hermetic::engine::ExecSpec;
use hermetic::oci::{
    self, BlobOutcome, ImageSettings, OciError, PushSettings, PushTarget, RetryPolicy, Secret,
};
use oci_fixture::{make_bundle, run};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USER: &str = "pusher";
const PASSWORD: &str = "s3cret-Pa55";

struct RegistryProcess(Child);

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_registry(dir: &Path) -> (RegistryProcess, u16) {
    let htpasswd = run(Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]));
    fs_err::write(dir.join("htpasswd"), htpasswd).unwrap();
    let port = free_port();
    let config = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: hermetic-test\n    path: {}\n",
        dir.join("data").display(),
        dir.join("htpasswd").display()
    );
    fs_err::write(dir.join("config.yml"), config).unwrap();
    let child = Command::new("/usr/bin/docker-registry")
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(
            fs_err::File::create(dir.join("registry.log"))
                .unwrap()
                .into_parts()
                .0,
        )
        .spawn()
        .expect("start docker-registry");
    let proc = RegistryProcess(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (proc, port);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("docker-registry did not start on port {port}");
}

/// A loopback TCP proxy: counts client->registry bytes and, while armed,
/// cuts connections once the count passes a threshold.
#[derive(Default)]
struct Proxy {
    bytes_up: AtomicU64,
    cut_after: AtomicU64,
    /// Cut only one connection (then disarm), or every one (registry "down").
    cut_once: AtomicBool,
    armed: AtomicBool,
}

impl Proxy {
    async fn start(upstream: u16) -> (Arc<Proxy>, u16) {
        let proxy = Arc::new(Proxy::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let p = p.clone();
                tokio::spawn(async move {
                    let _ = p.serve(client, upstream).await;
                });
            }
        });
        (proxy, port)
    }

    fn arm(&self, cut_after: u64, once: bool) {
        self.cut_after.store(
            self.bytes_up.load(Ordering::SeqCst) + cut_after,
            Ordering::SeqCst,
        );
        self.cut_once.store(once, Ordering::SeqCst);
        self.armed.store(true, Ordering::SeqCst);
    }

    fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }

    fn should_cut(&self) -> bool {
        if !self.armed.load(Ordering::SeqCst)
            || self.bytes_up.load(Ordering::SeqCst) < self.cut_after.load(Ordering::SeqCst)
        {
            return false;
        }
        if self.cut_once.load(Ordering::SeqCst) {
            self.armed.store(false, Ordering::SeqCst);
        }
        true
    }

    async fn serve(&self, client: TcpStream, upstream: u16) -> std::io::Result<()> {
        if self.should_cut() {
            return Ok(());
        }
        let server = TcpStream::connect(("127.0.0.1", upstream)).await?;
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let down = tokio::spawn(async move { tokio::io::copy(&mut sr, &mut cw).await });
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = cr.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            self.bytes_up.fetch_add(n as u64, Ordering::SeqCst);
            if self.should_cut() {
                down.abort();
                return Ok(());
            }
            sw.write_all(&buf[..n]).await?;
        }
        let _ = sw.shutdown().await;
        let _ = down.await;
        Ok(())
    }
}

fn target(reference: String, password: &str) -> PushTarget {
    PushTarget {
        username: Some(USER.into()),
        password: Some(Secret::new(password)),
        chunk_size: 16 << 20,
        retry: RetryPolicy {
            attempts: 3,
            backoff: Duration::from_millis(50),
        },
        ..PushTarget::new(reference)
    }
}

#[tokio::test]
async fn push_auth_retry_resume_mount_sbom_and_pull() {
    let tmp = tempfile::tempdir().unwrap();
    let (_registry, reg_port) = start_registry(tmp.path());
    let (proxy, port) = Proxy::start(reg_port).await;
    let bundle = make_bundle(tmp.path(), "demo-push", "1.0.0", "pushed");
    let layout = tmp.path().join("layout");
    let image = oci::image(
        &ImageSettings {
            base: Some("trixie".into()),
            oci_layout: Some(layout.clone()),
            ..ImageSettings::new(&bundle)
        },
        None,
    )
    .await
    .expect("image");
    let base_size = image.layers[0].size;
    let settings = |reference: String, password: &str| PushSettings {
        layout: layout.clone(),
        target: target(reference, password),
    };
    let repo = format!("127.0.0.1:{port}/demo/app");

    // A wrong password is a clear error that does not show the password.
    let err = oci::push(&settings(format!("{repo}:1.0.0"), "wrong-password"))
        .await
        .unwrap_err();
    assert!(matches!(err, OciError::Unauthorized { .. }), "{err:?}");
    let text = format!("{err} {err:?} {}", err.help().unwrap_or_default());
    assert!(
        text.contains("refused the credentials of user pusher"),
        "{text}"
    );
    assert!(!text.contains("wrong-password"), "{text}");

    // One connection drops during the base upload: the blob is restarted
    // and the push completes. (Each phase gets its own HERMETIC_HOME so the
    // record of pushed blobs does not turn uploads into mounts.)
    let home = |n: &str| {
        let dir = tmp.path().join(n);
        // SAFETY: this test is the only one in its binary; nothing else reads
        // the environment concurrently.
        unsafe { std::env::set_var("HERMETIC_HOME", &dir) };
    };
    home("home-retry");
    proxy.arm(base_size / 3, true);
    let report = oci::push(&settings(
        format!("127.0.0.1:{port}/demo/retry:1.0.0"),
        PASSWORD,
    ))
    .await
    .expect("push with one dropped connection");
    assert_eq!(report.blobs[1].outcome, BlobOutcome::Uploaded);
    assert_eq!(report.blobs[1].attempts, 2, "{:?}", report.blobs);
    assert!(report.bytes_uploaded > base_size);

    // The registry goes away once the base is through (every connection
    // cut): the push fails after bounded retries...
    home("home-app");
    proxy.arm(base_size + 40_000, false);
    let err = oci::push(&settings(format!("{repo}:1.0.0"), PASSWORD))
        .await
        .unwrap_err();
    assert!(
        matches!(err, OciError::Transport { .. }),
        "expected a transport error, got {err:?}"
    );
    assert!(err.help().unwrap().contains("rerun"));
    proxy.disarm();
    // ...and a rerun completes without re-sending what arrived.
    let before = proxy.bytes_up.load(Ordering::SeqCst);
    let report = oci::push(&settings(format!("{repo}:1.0.0"), PASSWORD))
        .await
        .expect("rerun");
    let sent = proxy.bytes_up.load(Ordering::SeqCst) - before;
    assert_eq!(report.digest, image.manifest_digest);
    assert_eq!(report.tags, ["1.0.0"]);
    assert_eq!(report.blobs[0].outcome, BlobOutcome::Exists, "{report:?}");
    assert_eq!(report.blobs[1].outcome, BlobOutcome::Exists, "{report:?}");
    assert!(
        report.blobs[2..5]
            .iter()
            .any(|b| b.outcome == BlobOutcome::Uploaded)
    );
    assert!(sent < base_size / 10, "rerun sent {sent} bytes");
    // A second rerun sends no blob at all.
    let before = proxy.bytes_up.load(Ordering::SeqCst);
    let again = oci::push(&settings(format!("{repo}:1.0.0"), PASSWORD))
        .await
        .expect("second rerun");
    let sent_again = proxy.bytes_up.load(Ordering::SeqCst) - before;
    assert!(again.blobs.iter().all(|b| b.outcome == BlobOutcome::Exists));
    assert_eq!(again.bytes_uploaded, 0);
    assert!(sent_again < 64 << 10, "rerun sent {sent_again} bytes");
    eprintln!(
        "base {base_size} bytes; rerun after cut sent {sent} bytes; second rerun {sent_again} bytes"
    );

    // The SBOM: distribution 2.8 has no referrers API, so the tag fallback.
    let sbom = report.sbom.as_ref().expect("sbom attached");
    assert_eq!(sbom.method, "tag");
    let sbom_tag = sbom.tag.clone().unwrap();
    assert_eq!(
        sbom_tag,
        format!("{}.sbom", image.manifest_digest.replace(':', "-"))
    );
    let raw = run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &format!("{USER}:{PASSWORD}"),
        // Straight to the registry: this blocking call would starve the
        // proxy, which runs on this test's runtime.
        &format!("docker://127.0.0.1:{reg_port}/demo/app:{sbom_tag}"),
    ]));
    let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(m["artifactType"], "application/vnd.cyclonedx+json");
    assert_eq!(m["subject"]["digest"], image.manifest_digest.as_str());

    // Another repository of the same registry: blobs are mounted.
    home("home-retry");
    let mounted = oci::push(&settings(
        format!("127.0.0.1:{port}/demo/other:1.0.0"),
        PASSWORD,
    ))
    .await
    .expect("push to a second repository");
    assert!(
        mounted.blobs[..5]
            .iter()
            .all(|b| b.outcome == BlobOutcome::Mounted),
        "{:?}",
        mounted.blobs
    );
    assert_eq!(mounted.bytes_uploaded, 0);

    // Credentials from a Docker config (auths) and from a credential helper.
    let docker_dir = tmp.path().join("docker");
    fs_err::create_dir_all(&docker_dir).unwrap();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    fs_err::write(
        docker_dir.join("config.json"),
        format!(r#"{{"auths":{{"127.0.0.1:{port}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    let helper_dir = tmp.path().join("helper");
    fs_err::create_dir_all(&helper_dir).unwrap();
    let helper = helper_dir.join("docker-credential-hermetictest");
    fs_err::write(
        &helper,
        format!("#!/bin/sh\nread server\necho '{{\"ServerURL\":\"'$server'\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}'\n"),
    )
    .unwrap();
    fs_err::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    // SAFETY: as above.
    unsafe {
        std::env::set_var("DOCKER_CONFIG", &docker_dir);
    }
    let from_config = oci::push(&PushSettings {
        layout: layout.clone(),
        target: PushTarget::new(format!("{repo}:from-config")),
    })
    .await
    .expect("push with docker config auths");
    assert_eq!(from_config.tags, ["from-config"]);
    fs_err::write(
        docker_dir.join("config.json"),
        format!(r#"{{"credHelpers":{{"127.0.0.1:{port}":"hermetictest"}}}}"#),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        helper_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    unsafe {
        std::env::set_var("PATH", path);
    }
    oci::push(&PushSettings {
        layout: layout.clone(),
        target: PushTarget::new(format!("{repo}:from-helper")),
    })
    .await
    .expect("push with a credential helper");

    // Pull back through the engine (with credentials) and run the launcher.
    let Some(engine) = common::engine_or_skip("oci push pull-back").await else {
        return;
    };
    let pinned = report.pinned.clone();
    // Through hermetic's own pull-by-digest (progress bar, digest check).
    let pulled = engine
        .ensure_pinned_with_auth(&pinned, None, Some((USER, PASSWORD)))
        .await
        .expect("pull by digest from the test registry");
    let digest = pinned.rsplit_once('@').unwrap().1;
    assert!(
        pulled.repo_digests.iter().any(|d| d.ends_with(digest)),
        "{:?}",
        pulled.repo_digests
    );
    let container = engine
        .create_container(&common::test_container(&pinned, "oci-push-test"))
        .await
        .unwrap();
    let out = container
        .exec(&ExecSpec {
            cmd: vec!["/opt/demo-push/demo-push".into()],
            user: None,
            workdir: None,
            env: vec![],
        })
        .await
        .unwrap();
    container.remove().await;
    assert_eq!(out.stdout.trim(), "pushed from 65532", "{out:?}");
    assert!(engine.remove_unused_image(&pinned).await.unwrap());
}

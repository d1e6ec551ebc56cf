//! A fake container engine for fast tests of the build orchestration: it
//! records every call, keeps each container's filesystem in a host
//! directory (so files copied in can be copied out again, and committed
//! images carry them), and answers commands with responders the test
//! installs (a command it has no responder for succeeds with no output).
//!
//! It runs nothing: a responder stands for what a command would have done
//! (write the files a step makes, print what a step prints). What it proves
//! is the orchestration around the commands: which containers exist, with
//! which network and user, which command runs where, and that every
//! container is removed whatever happens. Every capability is also tested
//! against the real engine (`tests/`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::{
    ContainerEngine, ContainerHandle, ContainerSpec, EngineError, EngineInfo, EngineKind,
    ExecOutput, ExecSpec, ImageInfo, Network,
};

/// One call the fake received, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `inspect_image`.
    InspectImage {
        /// The reference asked for.
        reference: String,
    },
    /// `ensure_pinned`.
    EnsurePinned {
        /// The reference asked for.
        reference: String,
    },
    /// `create_container`.
    Create {
        /// The new container's id.
        container: String,
        /// Its image.
        image: String,
        /// Its role label.
        role: String,
        /// Its network.
        network: Network,
        /// Whether capabilities were dropped.
        hardened: bool,
        /// Its default user.
        user: Option<String>,
    },
    /// `exec`.
    Exec {
        /// The container.
        container: String,
        /// The command, joined by spaces.
        cmd: String,
        /// The user it ran as (the exec's, else the container's).
        user: Option<String>,
    },
    /// `upload_tar_file` (and through it `copy_dir_in`).
    Upload {
        /// The container.
        container: String,
        /// Where the tar was unpacked.
        dest: String,
    },
    /// `put_file`.
    PutFile {
        /// The container.
        container: String,
        /// The file's path.
        path: String,
    },
    /// `copy_out`.
    CopyOut {
        /// The container.
        container: String,
        /// The path copied.
        path: String,
    },
    /// `read_file`.
    ReadFile {
        /// The container.
        container: String,
        /// The path read.
        path: String,
    },
    /// `commit`.
    Commit {
        /// The container.
        container: String,
        /// The new image's tag.
        tag: String,
    },
    /// `remove`.
    Remove {
        /// The container.
        container: String,
    },
}

/// What a responder sees of one command.
pub struct ExecContext<'a> {
    /// The container's filesystem root on the host.
    pub root: &'a Path,
    /// The command.
    pub spec: &'a ExecSpec,
    /// The command as one string (`sh -c` scripts are their script).
    pub cmd: String,
    /// The container's spec.
    pub container: &'a ContainerSpec,
}

impl ExecContext<'_> {
    /// The host path of a path inside the container.
    pub fn host_path(&self, inside: &str) -> PathBuf {
        inside_root(self.root, inside)
    }
}

type Responder = Box<dyn Fn(&ExecContext<'_>) -> Option<ExecOutput> + Send + Sync>;

struct FakeImage {
    info: ImageInfo,
    rootfs: Option<PathBuf>,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    images: Vec<FakeImage>,
    responders: Vec<Responder>,
    next: u64,
    live: BTreeMap<String, ContainerSpec>,
    roots: Vec<tempfile::TempDir>,
}

/// The fake engine. Cloning shares its state.
#[derive(Clone, Default)]
pub struct FakeEngine {
    state: Arc<Mutex<State>>,
}

impl FakeEngine {
    /// An engine with no images.
    pub fn new() -> FakeEngine {
        FakeEngine::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has failed already;
        // the state is still what it recorded.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an image (by ID `sha256:<hex>` and tags), whose containers start
    /// with a copy of `rootfs` (a host directory), or empty.
    pub fn add_image(&self, id: &str, tags: &[&str], rootfs: Option<&Path>) {
        self.lock().images.push(FakeImage {
            info: ImageInfo {
                id: id.to_string(),
                repo_tags: tags.iter().map(|t| t.to_string()).collect(),
                repo_digests: vec![],
                labels: HashMap::new(),
                size: 0,
            },
            rootfs: rootfs.map(Path::to_path_buf),
        });
    }

    /// Installs a responder: the first one that returns `Some` answers a
    /// command; later responders are tried first.
    pub fn respond(
        &self,
        f: impl Fn(&ExecContext<'_>) -> Option<ExecOutput> + Send + Sync + 'static,
    ) {
        self.lock().responders.insert(0, Box::new(f));
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Containers created and not removed.
    pub fn live_containers(&self) -> Vec<String> {
        self.lock().live.keys().cloned().collect()
    }

    fn record(&self, call: Call) {
        self.lock().calls.push(call);
    }

    fn find_image(&self, reference: &str) -> Option<(ImageInfo, Option<PathBuf>)> {
        self.lock()
            .images
            .iter()
            .rev()
            .find(|i| i.info.id == reference || i.info.repo_tags.iter().any(|t| t == reference))
            .map(|i| (i.info.clone(), i.rootfs.clone()))
    }
}

/// A successful command's output.
pub fn ok(stdout: impl Into<String>) -> ExecOutput {
    let stdout = stdout.into();
    ExecOutput {
        exit_code: 0,
        tail: stdout.lines().map(String::from).collect(),
        stdout,
    }
}

/// A failed command's output.
pub fn fail(exit_code: i64, message: &str) -> ExecOutput {
    ExecOutput {
        exit_code,
        stdout: String::new(),
        tail: vec![message.to_string()],
    }
}

#[async_trait]
impl ContainerEngine for FakeEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Docker
    }

    fn info(&self) -> EngineInfo {
        EngineInfo {
            kind: EngineKind::Docker,
            endpoint: "fake://".into(),
            tls: false,
            server_version: "fake".into(),
            api_version: "1.41".into(),
        }
    }

    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError> {
        self.record(Call::InspectImage {
            reference: reference.into(),
        });
        Ok(self.find_image(reference).map(|(info, _)| info))
    }

    async fn ensure_pinned(
        &self,
        reference: &str,
        hint: Option<String>,
    ) -> Result<ImageInfo, EngineError> {
        self.record(Call::EnsurePinned {
            reference: reference.into(),
        });
        self.find_image(reference)
            .map(|(info, _)| info)
            .ok_or_else(|| EngineError::ImageUnavailable {
                reference: reference.into(),
                reason: "the fake engine has no such image".into(),
                hint,
            })
    }

    async fn create_container(
        &self,
        spec: &ContainerSpec,
    ) -> Result<Box<dyn ContainerHandle>, EngineError> {
        let Some((_, rootfs)) = self.find_image(&spec.image) else {
            return Err(EngineError::ImageUnavailable {
                reference: spec.image.clone(),
                reason: "no such image in the engine".into(),
                hint: None,
            });
        };
        let root = tempfile::tempdir().map_err(|e| io("create fake container root", e))?;
        if let Some(src) = rootfs {
            copy_tree(&src, root.path()).map_err(|e| io("copy fake image rootfs", e))?;
        }
        let root_path = root.path().to_path_buf();
        let id = {
            let mut state = self.lock();
            state.next += 1;
            let id = format!("fake{:08}", state.next);
            state.live.insert(id.clone(), spec.clone());
            state.roots.push(root);
            id
        };
        self.record(Call::Create {
            container: id.clone(),
            image: spec.image.clone(),
            role: spec.role.clone(),
            network: spec.network,
            hardened: spec.hardened,
            user: spec.user.clone(),
        });
        Ok(Box::new(FakeContainer {
            engine: self.clone(),
            id,
            spec: spec.clone(),
            root: root_path.clone(),
            log: root_path.join(".fake-log"),
        }))
    }
}

struct FakeContainer {
    engine: FakeEngine,
    id: String,
    spec: ContainerSpec,
    root: PathBuf,
    log: PathBuf,
}

#[async_trait]
impl ContainerHandle for FakeContainer {
    fn id(&self) -> &str {
        &self.id
    }

    fn network(&self) -> Network {
        self.spec.network
    }

    fn log_path(&self) -> &Path {
        &self.log
    }

    async fn exec(&self, spec: &ExecSpec) -> Result<ExecOutput, EngineError> {
        let cmd = match spec.cmd.as_slice() {
            [sh, c, script] if sh.ends_with("sh") && c == "-c" => script.clone(),
            other => other.join(" "),
        };
        self.engine.record(Call::Exec {
            container: self.id.clone(),
            cmd: cmd.clone(),
            user: spec.user.clone().or_else(|| self.spec.user.clone()),
        });
        if let ["mkdir", "-p", dir] = spec
            .cmd
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            fs_err::create_dir_all(inside_root(&self.root, dir))
                .map_err(|e| io("fake mkdir", e))?;
            return Ok(ok(""));
        }
        let cx = ExecContext {
            root: &self.root,
            spec,
            cmd,
            container: &self.spec,
        };
        let state = self.engine.lock();
        Ok(state
            .responders
            .iter()
            .find_map(|r| r(&cx))
            .unwrap_or_else(|| ok("")))
    }

    async fn upload_tar_file(&self, tar_path: &Path, dest: &str) -> Result<(), EngineError> {
        self.engine.record(Call::Upload {
            container: self.id.clone(),
            dest: dest.into(),
        });
        let mut reader = crate::archive::open_archive(tar_path)
            .map_err(|e| io("open tar for the fake", std::io::Error::other(e)))?;
        let target = inside_root(&self.root, dest);
        tar::Archive::new(&mut reader)
            .unpack(&target)
            .map_err(|e| io("unpack into the fake container", e))?;
        reader
            .finish()
            .map_err(|e| io("unpack into the fake container", std::io::Error::other(e)))
    }

    async fn put_file(
        &self,
        dest_dir: &str,
        name: &str,
        contents: &[u8],
        mode: u32,
    ) -> Result<(), EngineError> {
        use std::os::unix::fs::PermissionsExt;
        let path = format!("{}/{name}", dest_dir.trim_end_matches('/'));
        self.engine.record(Call::PutFile {
            container: self.id.clone(),
            path: path.clone(),
        });
        let host = inside_root(&self.root, &path);
        if let Some(dir) = host.parent() {
            fs_err::create_dir_all(dir).map_err(|e| io("fake put_file", e))?;
        }
        fs_err::write(&host, contents).map_err(|e| io("fake put_file", e))?;
        fs_err::set_permissions(&host, std::fs::Permissions::from_mode(mode))
            .map_err(|e| io("fake put_file", e))
    }

    async fn copy_out(&self, path: &str, dest_file: &Path) -> Result<u64, EngineError> {
        self.engine.record(Call::CopyOut {
            container: self.id.clone(),
            path: path.into(),
        });
        let host = inside_root(&self.root, path);
        if fs_err::symlink_metadata(&host).is_err() {
            return Err(EngineError::PathNotFound {
                container: self.id.clone(),
                path: path.into(),
            });
        }
        // As the engines do: one top entry, the path's last component.
        let name = Path::new(path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| ".".into());
        let file = fs_err::File::create(dest_file).map_err(|e| io("fake copy_out", e))?;
        let mut builder = tar::Builder::new(file);
        builder.follow_symlinks(false);
        if host.is_dir() {
            builder
                .append_dir_all(&name, &host)
                .map_err(|e| io("fake copy_out", e))?;
        } else {
            builder
                .append_path_with_name(&host, &name)
                .map_err(|e| io("fake copy_out", e))?;
        }
        builder.into_inner().map_err(|e| io("fake copy_out", e))?;
        Ok(fs_err::metadata(dest_file).map(|m| m.len()).unwrap_or(0))
    }

    async fn read_file(&self, path: &str, limit: u64) -> Result<Vec<u8>, EngineError> {
        self.engine.record(Call::ReadFile {
            container: self.id.clone(),
            path: path.into(),
        });
        let host = inside_root(&self.root, path);
        match fs_err::metadata(&host) {
            Ok(m) if m.is_file() && m.len() <= limit => {
                fs_err::read(&host).map_err(|e| io("fake read_file", e))
            }
            Ok(m) if m.is_file() => Err(io(
                &format!("read {path}"),
                std::io::Error::other(format!("file is {} bytes, more than {limit}", m.len())),
            )),
            _ => Err(EngineError::PathNotFound {
                container: self.id.clone(),
                path: path.into(),
            }),
        }
    }

    async fn commit(
        &self,
        tag: &str,
        labels: HashMap<String, String>,
    ) -> Result<String, EngineError> {
        self.engine.record(Call::Commit {
            container: self.id.clone(),
            tag: tag.into(),
        });
        let snapshot = tempfile::tempdir().map_err(|e| io("fake commit", e))?;
        copy_tree(&self.root, snapshot.path()).map_err(|e| io("fake commit", e))?;
        let id = format!(
            "sha256:{}",
            crate::archive::sha256_bytes(format!("{}-{tag}", self.id).as_bytes())
        );
        let mut state = self.engine.lock();
        state.images.push(FakeImage {
            info: ImageInfo {
                id: id.clone(),
                repo_tags: vec![tag.to_string()],
                repo_digests: vec![],
                labels,
                size: 0,
            },
            rootfs: Some(snapshot.path().to_path_buf()),
        });
        state.roots.push(snapshot);
        Ok(id)
    }

    async fn remove(self: Box<Self>) {
        self.engine.record(Call::Remove {
            container: self.id.clone(),
        });
        self.engine.lock().live.remove(&self.id);
    }
}

/// `root` joined with an absolute in-container path, never leaving `root`
/// (`..` components are dropped: the fake trusts its tests, not its inputs).
fn inside_root(root: &Path, inside: &str) -> PathBuf {
    let mut out = root.to_path_buf();
    for c in Path::new(inside).components() {
        if let Component::Normal(part) = c {
            out.push(part);
        }
    }
    out
}

fn copy_tree(src: &Path, dest: &Path) -> std::io::Result<()> {
    for entry in walkdir::WalkDir::new(src).min_depth(1).sort_by_file_name() {
        let entry = entry.map_err(std::io::Error::other)?;
        let rel = entry
            .path()
            .strip_prefix(src)
            .map_err(std::io::Error::other)?;
        let target = dest.join(rel);
        let kind = entry.file_type();
        if kind.is_dir() {
            fs_err::create_dir_all(&target)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs_err::read_link(entry.path())?, &target)?;
        } else {
            fs_err::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn io(action: &str, source: std::io::Error) -> EngineError {
    EngineError::Io {
        action: action.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(image: &str, network: Network) -> ContainerSpec {
        ContainerSpec {
            image: image.into(),
            build_id: "t".into(),
            role: "build".into(),
            network,
            hardened: true,
            env: vec![],
            user: Some("1000:1000".into()),
        }
    }

    #[tokio::test]
    async fn files_go_in_and_come_out_and_calls_are_recorded() {
        let engine = FakeEngine::new();
        engine.add_image("sha256:aa", &["img:1"], None);
        engine.respond(|cx| {
            cx.cmd.contains("make-it").then(|| {
                fs_err::write(cx.host_path("/out/made"), "made").unwrap();
                ok("done\n")
            })
        });
        let c = engine
            .create_container(&spec("img:1", Network::None))
            .await
            .unwrap();
        assert_eq!(c.network(), Network::None);
        let src = tempfile::tempdir().unwrap();
        fs_err::write(src.path().join("a.txt"), "A").unwrap();
        c.copy_dir_in(src.path(), "/out").await.unwrap();
        let out = c.exec(&ExecSpec::shell("make-it")).await.unwrap();
        assert_eq!(out.stdout, "done\n");
        assert_eq!(c.read_file("/out/a.txt", 10).await.unwrap(), b"A");
        assert_eq!(c.read_file("/out/made", 10).await.unwrap(), b"made");
        assert!(matches!(
            c.read_file("/nope", 10).await,
            Err(EngineError::PathNotFound { .. })
        ));
        let tar = src.path().join("out.tar");
        c.copy_out("/out", &tar).await.unwrap();
        let names: Vec<String> = tar::Archive::new(fs_err::File::open(&tar).unwrap())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n == "out/made"), "{names:?}");
        let image = c.commit("derived:1", HashMap::new()).await.unwrap();
        c.remove().await;
        assert!(engine.live_containers().is_empty());
        // The committed image carries the container's files.
        let d = engine
            .create_container(&spec(&image, Network::Default))
            .await
            .unwrap();
        assert_eq!(d.read_file("/out/made", 10).await.unwrap(), b"made");
        d.remove().await;
        let calls = engine.calls();
        assert!(
            calls
                .iter()
                .any(|c| matches!(c, Call::Exec { cmd, user, .. }
            if cmd == "make-it" && user.as_deref() == Some("1000:1000")))
        );
        assert!(matches!(calls.last(), Some(Call::Remove { .. })));
    }

    #[tokio::test]
    async fn a_missing_image_is_named() {
        let engine = FakeEngine::new();
        let err = match engine
            .create_container(&spec("nope:1", Network::None))
            .await
        {
            Err(e) => e.to_string(),
            Ok(_) => panic!("created a container from a missing image"),
        };
        assert!(err.contains("nope:1"), "{err}");
    }
}

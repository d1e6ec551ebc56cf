//! Containers: create (labelled, optionally offline and hardened), run
//! commands with streamed output, copy files in and out as tar, remove.
//!
//! A container's main process is an idle `sleep infinity` under the engine's
//! init; each step runs through the exec API. That keeps one filesystem
//! across steps (copy in, build, repair, copy out) while each step gets its
//! own user, environment and exit code. Every container is put in a process
//! wide registry while it lives: [`cleanup_live_containers`] (called by the
//! binary on SIGINT/SIGTERM) removes whatever is still there.
//!
//! A step's output is read as whole lines per stream ([`super::stream`]):
//! each line goes to the container's log file (escape-free, capped), to
//! stderr with `-v` (escaped), and into a bounded tail for error messages;
//! stdout is also kept, up to [`STDOUT_LIMIT`], for hermetic's own steps
//! whose output it parses.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{ContainerConfig, ContainerCreateBody, ExecConfig, HostConfig};
use bollard::query_parameters::{
    CommitContainerOptionsBuilder, CreateContainerOptionsBuilder,
    DownloadFromContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;
use tracing::{debug, info, instrument, warn};

use super::stream::{self, LineSplitter, LogSink};
use super::{Engine, EngineError, LABEL_BUILD_ID, LABEL_ROLE, is_not_found};

/// Containers created by this process and not yet removed, by id.
static LIVE: LazyLock<Mutex<HashMap<String, bollard::Docker>>> = LazyLock::new(Default::default);

/// Containers whose create request was sent and has not answered yet, by
/// name. A signal can come while the engine is creating one: the entry
/// (left behind when the create future is dropped) tells
/// [`cleanup_live_containers`] to look for it by name and owner label.
static PENDING: LazyLock<Mutex<HashMap<String, bollard::Docker>>> = LazyLock::new(Default::default);

/// How long [`cleanup_live_containers`] keeps looking for a container whose
/// create was in flight: the engine may finish creating it after the
/// request was abandoned. Within the 2 s an interrupt may take.
const PENDING_GRACE: std::time::Duration = std::time::Duration::from_millis(1200);

/// Where the host's CA bundle is put in containers that fetch.
pub const CA_PATH: &str = "/tmp/hermetic-ca/ca-certificates.crt";

/// Environment that points TLS clients in a fetching container at [`CA_PATH`].
pub const CA_ENV: &[(&str, &str)] = &[
    ("SSL_CERT_FILE", CA_PATH),
    ("PIP_CERT", CA_PATH),
    ("REQUESTS_CA_BUNDLE", CA_PATH),
    ("CURL_CA_BUNDLE", CA_PATH),
];

/// How many trailing output lines an error message quotes.
const TAIL_LINES: usize = 25;

/// Most bytes of a step's stdout kept in [`ExecOutput::stdout`]. hermetic's
/// own steps print far less; a build step that prints more has the rest in
/// its log (up to the log's cap), not in memory.
pub const STDOUT_LIMIT: usize = 16 * 1024 * 1024;

/// Network access for a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The engine's default bridge: used by fetch steps only.
    Default,
    /// `network_mode: none`: build steps.
    None,
}

/// What container to create.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// Image to run, by ID or pinned reference.
    pub image: String,
    /// Build id put in the `io.hermetic.build-id` label (and log file name).
    pub build_id: String,
    /// Role label value, e.g. `fetch`, `build`, `smoke`, `exec`.
    pub role: String,
    /// Whether the container gets a network, and which.
    pub network: Network,
    /// Drop all capabilities and set `no-new-privileges`.
    pub hardened: bool,
    /// Environment for every step.
    pub env: Vec<String>,
    /// Default user for every step (`uid:gid`); `None`: the image's user.
    pub user: Option<String>,
}

/// One command to run in a container.
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    /// The command and its arguments.
    pub cmd: Vec<String>,
    /// `uid:gid` or a user name; `None` runs as the image's user.
    pub user: Option<String>,
    /// Working directory; `None`: the image's.
    pub workdir: Option<String>,
    /// `NAME=value` entries added to the container's environment.
    pub env: Vec<String>,
}

impl ExecSpec {
    /// A shell command line run with `sh -c`.
    pub fn shell(script: impl Into<String>) -> Self {
        ExecSpec {
            cmd: vec!["/bin/sh".into(), "-c".into(), script.into()],
            ..Default::default()
        }
    }

    /// Runs as this user.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }
}

/// The result of one exec.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// The command's exit code.
    pub exit_code: i64,
    /// Stdout (kept: steps like `ldconfig -p` are parsed), at most
    /// [`STDOUT_LIMIT`] bytes of it, lines longer than
    /// [`stream::MAX_LINE`] cut.
    pub stdout: String,
    /// The last lines of combined output, for error messages.
    pub tail: Vec<String>,
}

/// A running container. Remove it with [`Container::remove`]; if the process
/// is interrupted, [`cleanup_live_containers`] does.
pub struct Container {
    engine: Engine,
    id: String,
    network: Network,
    log_path: PathBuf,
    log: Arc<Mutex<LogSink<fs_err::File>>>,
}

/// What `hermetic gc` removed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GcReport {
    /// IDs of the containers removed.
    pub removed: Vec<String>,
    /// Containers of hermetic processes still running here (kept).
    pub skipped_live: Vec<String>,
    /// Derived builder images removed (`gc --images`), by tag.
    pub removed_images: Vec<String>,
    /// Derived builder images kept because a container uses them.
    pub kept_images_in_use: Vec<String>,
    /// Staging directories of builds whose process is gone (`kill -9`).
    pub removed_staging: Vec<PathBuf>,
    /// Failed smoke tests' evidence directories (`gc --all`).
    pub removed_evidence: Vec<PathBuf>,
}

/// Label naming the process that made a container:
/// `<boot id>:<pid>:<start time>`, the start time being field 22 of
/// `/proc/<pid>/stat` (clock ticks since boot). The start time is what tells
/// a live owner from a new process that reused its pid. Labels of older
/// hermetic versions, `<boot id>:<pid>`, are still read.
pub const LABEL_OWNER: &str = "io.hermetic.owner";

fn boot_id() -> String {
    fs_err::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// This process's owner label (see [`LABEL_OWNER`]): read from `/proc`
/// once, as it cannot change while the process runs.
pub fn owner_label() -> String {
    static LABEL: LazyLock<String> = LazyLock::new(|| {
        let pid = std::process::id();
        let start = process_start_time(pid).unwrap_or_default();
        format!("{}:{pid}:{start}", boot_id())
    });
    LABEL.clone()
}

/// A process's start time, field 22 of `/proc/<pid>/stat`, or `None` when
/// there is no such process (or the file does not parse).
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs_err::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2, the command name, is in parentheses and may itself hold
    // spaces and parentheses: the fields after it start after the last ')'.
    let (_, after) = stat.rsplit_once(')')?;
    // `after` starts with field 3 (state): field 22 is its 20th word.
    after.split_whitespace().nth(19)?.parse().ok()
}

/// True when the owner label names a process that still runs on this host:
/// same boot, the pid exists, and (new format) it started when the label
/// says. A label that does not parse names no live process.
pub fn owner_is_alive(owner: &str) -> bool {
    let mut parts = owner.split(':');
    let (Some(boot), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    let start = parts.next();
    if parts.next().is_some() || boot.is_empty() || boot != boot_id() {
        return false;
    }
    // A number, not any string: `/proc/self` exists for everyone.
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    match start {
        None => Path::new(&format!("/proc/{pid}")).exists(),
        Some(start) => match start.parse::<u64>() {
            Ok(start) => process_start_time(pid) == Some(start),
            Err(_) => false,
        },
    }
}

impl Engine {
    /// Creates and starts a labelled container that idles until steps are
    /// exec'd into it.
    #[instrument(skip_all, fields(image = %spec.image, role = %spec.role))]
    pub async fn create_container(&self, spec: &ContainerSpec) -> Result<Container, EngineError> {
        let labels = HashMap::from([
            (LABEL_BUILD_ID.to_string(), spec.build_id.clone()),
            (LABEL_ROLE.to_string(), spec.role.clone()),
            (LABEL_OWNER.to_string(), owner_label()),
        ]);
        let host_config = HostConfig {
            init: Some(true),
            network_mode: (spec.network == Network::None).then(|| "none".to_string()),
            cap_drop: spec.hardened.then(|| vec!["ALL".to_string()]),
            security_opt: spec.hardened.then(|| vec!["no-new-privileges".to_string()]),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: Some(vec!["sleep".into(), "infinity".into()]),
            entrypoint: Some(vec![]),
            env: Some(spec.env.clone()),
            user: spec.user.clone(),
            labels: Some(labels),
            network_disabled: (spec.network == Network::None).then_some(true),
            host_config: Some(host_config),
            ..Default::default()
        };
        let name = format!(
            "hermetic-{}-{}-{}",
            spec.role,
            short(&spec.build_id),
            unique_suffix()
        );
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        set_pending(&self.docker, &name, true);
        let created = self.docker.create_container(Some(options), body).await;
        if let Ok(created) = &created {
            register(&self.docker, &created.id);
        }
        set_pending(&self.docker, &name, false);
        let created = created.map_err(|source| {
            if is_not_found(&source) {
                EngineError::ImageUnavailable {
                    reference: spec.image.clone(),
                    reason: "no such image in the engine".into(),
                    hint: None,
                }
            } else {
                EngineError::Container {
                    container: name.clone(),
                    action: "create",
                    source: Box::new(source),
                }
            }
        })?;
        let id = created.id;
        let log_path = crate::paths::fresh_log(&format!("{}-{}.log", spec.build_id, name));
        let log = open_log(&log_path)?;
        let container = Container {
            engine: self.clone(),
            id: id.clone(),
            network: spec.network,
            log_path,
            log: Arc::new(Mutex::new(log)),
        };
        if let Err(source) = self.docker.start_container(&id, None).await {
            container.remove().await;
            return Err(EngineError::Container {
                container: name,
                action: "start",
                source: Box::new(source),
            });
        }
        debug!(container = %short(&id), "container started");
        Ok(container)
    }

    /// Removes every container carrying hermetic's label, running or not.
    ///
    /// Containers of a hermetic process still running on this host are left
    /// alone unless `all` is set: gc is for leftovers, not for live builds.
    pub async fn gc(&self, all: bool) -> Result<GcReport, EngineError> {
        let filters = HashMap::from([("label", vec![LABEL_BUILD_ID])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(EngineError::api("list containers"))?;
        let mut report = GcReport::default();
        for c in list {
            let Some(id) = c.id else { continue };
            let owner = c
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_OWNER))
                .map(String::as_str);
            if !all && owner.is_some_and(owner_is_alive) {
                report.skipped_live.push(id);
                continue;
            }
            let options = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            match self.docker.remove_container(&id, Some(options)).await {
                Ok(()) => report.removed.push(id),
                Err(e) if is_not_found(&e) => {}
                Err(source) => {
                    return Err(EngineError::Container {
                        container: id,
                        action: "remove",
                        source: Box::new(source),
                    });
                }
            }
        }
        Ok(report)
    }

    /// Lists the ids of containers carrying hermetic's label (all states),
    /// only those of one build when `build_id` is given.
    pub async fn labelled_containers(
        &self,
        build_id: Option<&str>,
    ) -> Result<Vec<String>, EngineError> {
        let label = match build_id {
            Some(id) => format!("{LABEL_BUILD_ID}={id}"),
            None => LABEL_BUILD_ID.to_string(),
        };
        let filters = HashMap::from([("label", vec![label])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(EngineError::api("list containers"))?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }
}

impl Container {
    /// The container's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The network the container was created with.
    pub fn network(&self) -> Network {
        self.network
    }

    /// The log file every step's output is appended to.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Runs one command, streaming its output to the log (and to stderr with
    /// `-v`), and returns its exit code and output.
    #[instrument(skip_all, fields(container = %short(&self.id)))]
    pub async fn exec(&self, spec: &ExecSpec) -> Result<ExecOutput, EngineError> {
        let docker = &self.engine.docker;
        let config = ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(spec.cmd.clone()),
            env: (!spec.env.is_empty()).then(|| spec.env.clone()),
            user: spec.user.clone(),
            working_dir: spec.workdir.clone(),
            ..Default::default()
        };
        let err = |action, source| EngineError::Container {
            container: short(&self.id).to_string(),
            action,
            source: Box::new(source),
        };
        let clock = std::time::Instant::now();
        let exec = docker
            .create_exec(&self.id, config)
            .await
            .map_err(|e| err("exec create", e))?;
        self.log_line(&format!("$ {}", spec.cmd.join(" ")));
        let started = docker
            .start_exec(
                &exec.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: Some(1 << 20),
                }),
            )
            .await
            .map_err(|e| err("exec start", e))?;
        let mut stdout = String::new();
        let mut tail: VecDeque<String> = VecDeque::new();
        let mut out_lines = LineSplitter::default();
        let mut err_lines = LineSplitter::default();
        if let StartExecResults::Attached { mut output, .. } = started {
            while let Some(chunk) = output.next().await {
                let chunk = chunk.map_err(|e| err("exec output", e))?;
                let is_stdout = matches!(chunk, bollard::container::LogOutput::StdOut { .. });
                let splitter = if is_stdout {
                    &mut out_lines
                } else {
                    &mut err_lines
                };
                for line in splitter.push(&chunk.into_bytes()) {
                    self.take_line(line, is_stdout, &mut stdout, &mut tail);
                }
            }
        }
        // The streams ended: their unterminated last lines.
        for (splitter, is_stdout) in [(&mut out_lines, true), (&mut err_lines, false)] {
            if let Some(line) = splitter.finish() {
                self.take_line(line, is_stdout, &mut stdout, &mut tail);
            }
        }
        let inspect = docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| err("exec inspect", e))?;
        let exit_code = inspect.exit_code.unwrap_or(-1);
        self.log_line(&format!(
            "[exit {exit_code} after {:.1}s]",
            clock.elapsed().as_secs_f64()
        ));
        Ok(ExecOutput {
            exit_code,
            stdout,
            tail: tail.into(),
        })
    }

    /// Copies a host directory's contents into `dest` (created if missing)
    /// inside the container, as one tar stream.
    pub async fn copy_dir_in(&self, host_dir: &Path, dest: &str) -> Result<(), EngineError> {
        let tmp = deterministic_dir_tar(host_dir).await?;
        self.mkdir(dest).await?;
        self.upload_tar_file(tmp.path(), dest).await
    }

    /// Uploads a tar file (plain, gzip or zstd) and unpacks it at `dest`
    /// (which must exist). The engine unpacks plain and gzip tars itself; a
    /// zstd archive, which the Docker API does not take, is decompressed
    /// into a temporary tar first. Either way the archive is first read to
    /// its end through [`crate::archive::ArchiveReader`], so a corrupt one
    /// (bad checksum, trailing data) is refused here rather than half
    /// unpacked by the engine, which stops reading at the end of the tar.
    pub async fn upload_tar_file(&self, tar_path: &Path, dest: &str) -> Result<(), EngineError> {
        let src = tar_path.to_path_buf();
        let decompressed = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            let mut reader = crate::archive::open_archive(&src).map_err(std::io::Error::other)?;
            let tmp = if reader.format() == crate::archive::StreamFormat::Zstd {
                let mut tmp = tempfile::NamedTempFile::new()?;
                std::io::copy(&mut reader, tmp.as_file_mut())?;
                Some(tmp)
            } else {
                std::io::copy(&mut reader, &mut std::io::sink())?;
                None
            };
            reader.finish().map_err(std::io::Error::other)?;
            Ok(tmp)
        })
        .await
        .map_err(|e| io_err("decompress task", std::io::Error::other(e)))?
        .map_err(|e| io_err(&format!("read {}", tar_path.display()), e))?;
        let tar_path = decompressed.as_ref().map_or(tar_path, |t| t.path());
        let file = tokio::fs::File::open(tar_path)
            .await
            .map_err(|e| io_err(&format!("open {}", tar_path.display()), e))?;
        let stream = tokio_util::io::ReaderStream::new(file);
        let options = UploadToContainerOptionsBuilder::default()
            .path(dest)
            .build();
        self.engine
            .docker
            .upload_to_container(&self.id, Some(options), bollard::body_try_stream(stream))
            .await
            .map_err(|source| EngineError::Container {
                container: short(&self.id).into(),
                action: "copy in",
                source: Box::new(source),
            })
    }

    /// Puts one file (e.g. a CA bundle) at `dest_dir/name` with the given mode.
    pub async fn put_file(
        &self,
        dest_dir: &str,
        name: &str,
        contents: &[u8],
        mode: u32,
    ) -> Result<(), EngineError> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        builder
            .append_data(&mut header, name, contents)
            .map_err(|e| io_err("build tar", e))?;
        let data = builder.into_inner().map_err(|e| io_err("build tar", e))?;
        self.mkdir(dest_dir).await?;
        let options = UploadToContainerOptionsBuilder::default()
            .path(dest_dir)
            .build();
        self.engine
            .docker
            .upload_to_container(&self.id, Some(options), bollard::body_full(data.into()))
            .await
            .map_err(|source| EngineError::Container {
                container: short(&self.id).into(),
                action: "copy in",
                source: Box::new(source),
            })
    }

    /// Installs the host's CA bundle at [`CA_PATH`] (see [`CA_ENV`]).
    pub async fn install_ca_bundle(&self, pem: &[u8]) -> Result<(), EngineError> {
        let (dir, name) = CA_PATH.rsplit_once('/').unwrap_or(("/", CA_PATH));
        self.put_file(dir, name, pem, 0o644).await
    }

    /// Streams `path` out of the container as a tar archive into `dest_file`.
    pub async fn copy_out(&self, path: &str, dest_file: &Path) -> Result<u64, EngineError> {
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        let mut stream = self
            .engine
            .docker
            .download_from_container(&self.id, Some(options));
        let mut out = tokio::fs::File::create(dest_file)
            .await
            .map_err(|e| io_err(&format!("create {}", dest_file.display()), e))?;
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| {
                if is_not_found(&source) {
                    EngineError::PathNotFound {
                        container: short(&self.id).into(),
                        path: path.into(),
                    }
                } else {
                    EngineError::Container {
                        container: short(&self.id).into(),
                        action: "copy out",
                        source: Box::new(source),
                    }
                }
            })?;
            written += chunk.len() as u64;
            out.write_all(&chunk)
                .await
                .map_err(|e| io_err(&format!("write {}", dest_file.display()), e))?;
        }
        out.flush()
            .await
            .map_err(|e| io_err(&format!("write {}", dest_file.display()), e))?;
        Ok(written)
    }

    /// Reads one regular file (following symlinks, at most `limit` bytes).
    pub async fn read_file(&self, path: &str, limit: u64) -> Result<Vec<u8>, EngineError> {
        let mut current = path.to_string();
        for _ in 0..8 {
            let options = DownloadFromContainerOptionsBuilder::default()
                .path(&current)
                .build();
            let bytes: Vec<u8> = self
                .engine
                .docker
                .download_from_container(&self.id, Some(options))
                .map_ok(|b| b.to_vec())
                .try_concat()
                .await
                .map_err(|source| {
                    if is_not_found(&source) {
                        EngineError::PathNotFound {
                            container: short(&self.id).into(),
                            path: current.clone(),
                        }
                    } else {
                        EngineError::Container {
                            container: short(&self.id).into(),
                            action: "read file",
                            source: Box::new(source),
                        }
                    }
                })?;
            match first_entry(&bytes, limit)
                .map_err(|e| io_err(&format!("read {current} from container"), e))?
            {
                Entry::File(data) => return Ok(data),
                Entry::Link(target) => current = resolve_link(&current, &target),
            }
        }
        Err(io_err(
            &format!("read {path}"),
            std::io::Error::other("too many levels of symbolic links"),
        ))
    }

    /// Creates a directory (and parents) as the container's default user.
    pub async fn mkdir(&self, dir: &str) -> Result<(), EngineError> {
        let spec = ExecSpec {
            cmd: vec!["mkdir".into(), "-p".into(), dir.into()],
            ..Default::default()
        };
        let out = self.exec(&spec).await?;
        if out.exit_code != 0 {
            return Err(io_err(
                &format!("mkdir {dir} in container"),
                std::io::Error::other(out.tail.join("\n")),
            ));
        }
        Ok(())
    }

    /// Commits the container's filesystem as a new image tagged `tag` and
    /// returns the image ID. The idle command is replaced by a shell so the
    /// image behaves like the one it was made from.
    pub async fn commit(
        &self,
        tag: &str,
        labels: HashMap<String, String>,
    ) -> Result<String, EngineError> {
        let (repo, tag_part) = tag.rsplit_once(':').unwrap_or((tag, "latest"));
        let options = CommitContainerOptionsBuilder::default()
            .container(&self.id)
            .repo(repo)
            .tag(tag_part)
            .pause(true)
            .build();
        let config = ContainerConfig {
            cmd: Some(vec!["/bin/sh".into()]),
            entrypoint: Some(vec![]),
            labels: Some(labels),
            ..Default::default()
        };
        let response = self
            .engine
            .docker
            .commit_container(options, config)
            .await
            .map_err(|source| EngineError::Container {
                container: short(&self.id).into(),
                action: "commit",
                source: Box::new(source),
            })?;
        Ok(response.id)
    }

    /// Force-removes the container (and its anonymous volumes). Never fails:
    /// a removal error is logged, and `hermetic gc` catches what is left.
    pub async fn remove(self) {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self
            .engine
            .docker
            .remove_container(&self.id, Some(options))
            .await
        {
            Ok(()) => debug!(container = %short(&self.id), "container removed"),
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                warn!(container = %short(&self.id), error = %e, "could not remove container; `hermetic gc` will")
            }
        }
        unregister(&self.id);
    }

    /// One whole line of a step's output: to the log, to stderr with `-v`,
    /// into the tail and (stdout, within [`STDOUT_LIMIT`]) into `stdout`.
    fn take_line(
        &self,
        line: stream::Line,
        is_stdout: bool,
        stdout: &mut String,
        tail: &mut VecDeque<String>,
    ) {
        if is_stdout && stdout.len() + line.text.len() < STDOUT_LIMIT {
            stdout.push_str(&line.text);
            if line.terminated {
                stdout.push('\n');
            }
        }
        if let Ok(mut log) = self.log.lock() {
            log.line(&line.text);
        }
        if self.engine.stream_output {
            // Outside text: colour codes dropped, the rest escaped; a closed
            // stderr ends the run through `term::closed`, so the error needs
            // no handling.
            let shown = crate::term::escape_output(&stream::strip_escapes(&line.text)).into_owned();
            let _ = crate::term::write_stderr(format!("{shown}\n").as_bytes());
        }
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.text);
    }

    /// Writes hermetic's own lines (the command, the exit code) to the log.
    fn log_line(&self, text: &str) {
        if let Ok(mut log) = self.log.lock() {
            for line in text.lines() {
                log.line(line);
            }
        }
    }
}

/// A temporary tar of a host directory's contents for copying into a
/// container: owner root, a fixed mtime, and modes 0755/0644 by the owner's
/// execute bit, so what lands in the container does not depend on the host's
/// umask (a 0700 directory is unreadable for the unprivileged build user) or
/// on when files were touched.
pub(crate) async fn deterministic_dir_tar(
    host_dir: &Path,
) -> Result<tempfile::NamedTempFile, EngineError> {
    let tmp = tempfile::NamedTempFile::new().map_err(|e| io_err("create temp tar", e))?;
    let src = host_dir.to_path_buf();
    let file = tmp.reopen().map_err(|e| io_err("open temp tar", e))?;
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
        builder.follow_symlinks(false);
        builder.mode(tar::HeaderMode::Deterministic);
        builder.append_dir_all(".", &src)?;
        builder.into_inner()?.flush()
    })
    .await
    .map_err(|e| io_err("tar task", std::io::Error::other(e)))?
    .map_err(|e| io_err(&format!("tar {}", host_dir.display()), e))?;
    Ok(tmp)
}

enum Entry {
    File(Vec<u8>),
    Link(String),
}

fn first_entry(tar_bytes: &[u8], limit: u64) -> std::io::Result<Entry> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut entries = archive.entries()?;
    let Some(entry) = entries.next() else {
        return Err(std::io::Error::other("empty archive"));
    };
    let mut entry = entry?;
    let kind = entry.header().entry_type();
    if kind.is_symlink() {
        let target = entry
            .link_name()?
            .ok_or_else(|| std::io::Error::other("symlink without target"))?;
        return Ok(Entry::Link(target.to_string_lossy().into_owned()));
    }
    if !kind.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if entry.size() > limit {
        return Err(std::io::Error::other(format!(
            "file is {} bytes, more than the {limit} allowed",
            entry.size()
        )));
    }
    let mut data = Vec::with_capacity(entry.size() as usize);
    std::io::Read::read_to_end(&mut entry, &mut data)?;
    Ok(Entry::File(data))
}

/// Resolves a symlink target relative to the link's directory.
fn resolve_link(link: &str, target: &str) -> String {
    if target.starts_with('/') {
        return target.to_string();
    }
    let dir = link.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    format!("{dir}/{target}")
}

fn open_log(path: &Path) -> Result<LogSink<fs_err::File>, EngineError> {
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir).map_err(|e| io_err("create log directory", e))?;
    }
    let file = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io_err("open log file", e))?;
    let already = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(LogSink::new(file, already, stream::LOG_LIMIT))
}

fn io_err(action: &str, source: std::io::Error) -> EngineError {
    EngineError::Io {
        action: action.to_string(),
        source,
    }
}

fn register(docker: &bollard::Docker, id: &str) {
    if let Ok(mut live) = LIVE.lock() {
        live.insert(id.to_string(), docker.clone());
    }
}

fn unregister(id: &str) {
    if let Ok(mut live) = LIVE.lock() {
        live.remove(id);
    }
}

fn set_pending(docker: &bollard::Docker, name: &str, on: bool) {
    if let Ok(mut pending) = PENDING.lock() {
        if on {
            pending.insert(name.to_string(), docker.clone());
        } else {
            pending.remove(name);
        }
    }
}

/// Force-removes one container by id or name; true when it was there.
async fn remove_quietly(docker: &bollard::Docker, id: &str) -> bool {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(id, Some(options)).await {
        Ok(()) => {
            info!(container = %short(id), "removed container on exit");
            true
        }
        Err(e) if is_not_found(&e) => false,
        Err(e) => {
            warn!(container = %short(id), error = %e, "could not remove container on exit");
            false
        }
    }
}

/// The containers carrying this process's owner label: id and names
/// (as the engine lists them, with a leading `/`).
async fn owned_containers(docker: &bollard::Docker) -> Vec<(String, Vec<String>)> {
    let label = format!("{LABEL_OWNER}={}", owner_label());
    let filters = HashMap::from([("label", vec![label])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    match docker.list_containers(Some(options)).await {
        Ok(list) => list
            .into_iter()
            .filter_map(|c| Some((c.id?, c.names.unwrap_or_default())))
            .collect(),
        Err(e) => {
            warn!(error = %e, "could not list this process's containers");
            Vec::new()
        }
    }
}

/// Removes every container this process created and has not removed yet.
/// Called by the binary when SIGINT or SIGTERM arrives and when a command
/// ends. Besides the registered containers, it removes those whose create
/// was in flight: by the name they were requested under and, for one whose
/// create the engine finishes late, by this process's owner label, looked
/// for during [`PENDING_GRACE`].
pub async fn cleanup_live_containers() -> usize {
    let live: Vec<(String, bollard::Docker)> = match LIVE.lock() {
        Ok(mut live) => live.drain().collect(),
        Err(_) => Vec::new(),
    };
    let pending: Vec<(String, bollard::Docker)> = match PENDING.lock() {
        Ok(mut pending) => pending.drain().collect(),
        Err(_) => Vec::new(),
    };
    let mut count = 0;
    for (id, docker) in &live {
        if remove_quietly(docker, id).await {
            count += 1;
        }
    }
    if pending.is_empty() {
        return count;
    }
    let deadline = std::time::Instant::now() + PENDING_GRACE;
    let mut waiting = pending;
    loop {
        let mut still = Vec::new();
        for (name, docker) in waiting {
            let mut found = false;
            for (id, names) in owned_containers(&docker).await {
                // Docker lists a container it is still creating but answers
                // 404 to its removal: only a removal counts as found.
                if remove_quietly(&docker, &id).await {
                    count += 1;
                    found |= names.iter().any(|n| n.trim_start_matches('/') == name);
                }
            }
            if !found && remove_quietly(&docker, &name).await {
                count += 1;
                found = true;
            }
            if !found {
                still.push((name, docker));
            }
        }
        waiting = still;
        if waiting.is_empty() || std::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    count
}

/// First 12 characters of an id, as the engines print them.
pub(crate) fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_relative_to_their_directory() {
        assert_eq!(
            resolve_link("/lib/x86_64-linux-gnu/libc.so.6", "libc-2.31.so"),
            "/lib/x86_64-linux-gnu/libc-2.31.so"
        );
        assert_eq!(
            resolve_link("/lib64/libc.so.6", "/usr/lib64/libc.so.6"),
            "/usr/lib64/libc.so.6"
        );
    }

    #[test]
    fn owner_liveness_compares_the_start_time() {
        let pid = std::process::id();
        let boot = boot_id();
        let start = process_start_time(pid).expect("own start time");
        assert!(owner_is_alive(&owner_label()), "{}", owner_label());
        assert!(owner_is_alive(&format!("{boot}:{pid}:{start}")));
        // Same pid, another start time: a process that reused the pid.
        assert!(!owner_is_alive(&format!("{boot}:{pid}:{}", start + 1)));
        assert!(!owner_is_alive(&format!("{boot}:{pid}:0")));
        // The old format: alive while the pid exists.
        assert!(owner_is_alive(&format!("{boot}:{pid}")));
        // Hostile or broken labels name nobody alive.
        for bad in [
            format!("{boot}:self"),
            format!("{boot}:self:{start}"),
            format!("{boot}:../{pid}"),
            format!("{boot}:{pid}:{start}:x"),
            format!("{boot}:{pid}:"),
            format!("{boot}:{pid}:-1"),
            format!("other-boot:{pid}:{start}"),
            format!(":{pid}:{start}"),
            String::new(),
            "garbage".into(),
        ] {
            assert!(!owner_is_alive(&bad), "{bad:?} counted as alive");
        }
    }

    #[test]
    fn start_time_of_a_process_with_parentheses_in_its_name() {
        // The command name is user-controlled: `a) b c` must not shift fields.
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("a) 1 2 3 (b");
        std::fs::copy("/bin/sleep", &exe).unwrap();
        let mut child = std::process::Command::new(&exe).arg("5").spawn().unwrap();
        let mine = process_start_time(std::process::id()).unwrap();
        let theirs = process_start_time(child.id());
        child.kill().unwrap();
        child.wait().unwrap();
        let theirs = theirs.expect("child's start time");
        assert!(theirs >= mine, "child {theirs} started before us {mine}");
    }

    #[test]
    fn short_ids() {
        assert_eq!(short("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short("abc"), "abc");
    }
}

//! Images: inspect, pull by digest (and check the digest), import a rootfs
//! tarball, build from a Dockerfile context, save and load docker-archive
//! tarballs, list by label, tag and remove.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateImageOptionsBuilder, ListImagesOptionsBuilder,
    RemoveImageOptionsBuilder,
};
use futures_util::StreamExt;
use tracing::{debug, info, instrument};

use super::{Engine, EngineError, is_not_found};
use crate::progress;

/// What hermetic needs to know about an image present in the engine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageInfo {
    /// The image ID (`sha256:<hex>`): the digest of its config.
    pub id: String,
    /// `name:tag` references that point at it.
    pub repo_tags: Vec<String>,
    /// `name@sha256:<manifest digest>` for images that came from a registry.
    pub repo_digests: Vec<String>,
    /// The image's labels.
    pub labels: HashMap<String, String>,
    /// Size in bytes, as the engine reports it.
    pub size: i64,
}

/// A Dockerfile build request: the context is a tar file on the host.
#[derive(Debug, Clone)]
pub struct BuildImageSpec {
    /// The build context, a tar file.
    pub context_tar: PathBuf,
    /// Path of the Dockerfile inside the context.
    pub dockerfile: String,
    /// The tag the image is built under.
    pub tag: String,
    /// `--build-arg` values, by name.
    pub build_args: HashMap<String, String>,
    /// Labels put on the image.
    pub labels: HashMap<String, String>,
    /// Log file that receives the builder's output.
    pub log: PathBuf,
    /// Run every step again instead of reusing the engine's cached layers
    /// (a forced remake must really remake, or it proves nothing).
    pub no_cache: bool,
}

impl Engine {
    /// Inspects an image; `Ok(None)` when the engine does not have it.
    pub async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError> {
        match self.docker.inspect_image(reference).await {
            Ok(img) => Ok(Some(ImageInfo {
                id: img.id.unwrap_or_default(),
                repo_tags: img.repo_tags.unwrap_or_default(),
                repo_digests: img.repo_digests.unwrap_or_default(),
                labels: img.config.and_then(|c| c.labels).unwrap_or_default(),
                size: img.size.unwrap_or_default(),
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(source) => Err(EngineError::Api {
                action: "inspect image",
                source: Box::new(source),
            }),
        }
    }

    /// Makes sure an image pinned as `name@sha256:<digest>` is present,
    /// pulling it with a progress bar when it is not, and refuses an image
    /// whose registry digest is not the pinned one.
    #[instrument(skip_all, fields(reference = %reference))]
    pub async fn ensure_pinned(
        &self,
        reference: &str,
        hint: Option<String>,
    ) -> Result<ImageInfo, EngineError> {
        self.ensure_pinned_with_auth(reference, hint, None).await
    }

    /// [`Engine::ensure_pinned`] with registry credentials (user, password)
    /// for the pull. The password goes to the engine only, never to a log.
    pub async fn ensure_pinned_with_auth(
        &self,
        reference: &str,
        hint: Option<String>,
        auth: Option<(&str, &str)>,
    ) -> Result<ImageInfo, EngineError> {
        let (name, digest) = split_pinned(reference)?;
        let credentials = auth.map(|(user, password)| bollard::auth::DockerCredentials {
            username: Some(user.to_string()),
            password: Some(password.to_string()),
            serveraddress: name.split('/').next().map(String::from),
            ..Default::default()
        });
        let info = match self.inspect_image(reference).await? {
            Some(info) => info,
            None => {
                self.pull(reference, hint, credentials).await?;
                self.inspect_image(reference).await?.ok_or_else(|| {
                    EngineError::ImageUnavailable {
                        reference: reference.into(),
                        reason: "the engine reported success but has no such image".into(),
                        hint: None,
                    }
                })?
            }
        };
        if !has_digest(&info.repo_digests, digest) {
            return Err(EngineError::DigestMismatch {
                reference: reference.into(),
                expected: digest.into(),
                got: info.repo_digests.clone(),
            });
        }
        Ok(info)
    }

    async fn pull(
        &self,
        reference: &str,
        hint: Option<String>,
        credentials: Option<bollard::auth::DockerCredentials>,
    ) -> Result<(), EngineError> {
        info!("pulling {reference}");
        let options = CreateImageOptionsBuilder::default()
            .from_image(reference)
            .build();
        let mut stream = self.docker.create_image(Some(options), None, credentials);
        let bar = progress::bytes(format!("pull {reference}"), None);
        let mut layers: HashMap<String, (i64, i64)> = HashMap::new();
        while let Some(item) = stream.next().await {
            let item = item.map_err(|e| EngineError::ImageUnavailable {
                reference: reference.into(),
                reason: e.to_string(),
                hint: hint.clone(),
            })?;
            if let (Some(id), Some(detail)) = (item.id, item.progress_detail)
                && let (Some(cur), Some(total)) = (detail.current, detail.total)
            {
                layers.insert(id, (cur, total));
                let (cur, total) = layers
                    .values()
                    .fold((0, 0), |(a, b), (c, t)| (a + c, b + t));
                bar.set_length(total.max(0) as u64);
                bar.set_position(cur.max(0) as u64);
            }
        }
        bar.finish_and_clear();
        Ok(())
    }

    /// Imports a rootfs tarball as an image (`POST /images/create?fromSrc=-`)
    /// and returns its image ID.
    #[instrument(skip_all, fields(tag = %tag))]
    pub async fn import_rootfs(
        &self,
        tarball: &Path,
        tag: &str,
        changes: &[String],
    ) -> Result<String, EngineError> {
        let import_err = |reason: String| EngineError::Import {
            tarball: tarball.into(),
            tag: tag.into(),
            reason,
        };
        let (repo, tag_part) = tag.rsplit_once(':').unwrap_or((tag, "latest"));
        let file = tokio::fs::File::open(tarball)
            .await
            .map_err(|e| import_err(e.to_string()))?;
        let size = file.metadata().await.map(|m| m.len()).ok();
        let bar = progress::bytes(format!("import {tag}"), size);
        let counted = {
            let bar = bar.clone();
            tokio_util::io::ReaderStream::new(file).inspect(move |chunk| {
                if let Ok(c) = chunk {
                    bar.inc(c.len() as u64);
                }
            })
        };
        let mut options = CreateImageOptionsBuilder::default()
            .from_src("-")
            .repo(repo)
            .tag(tag_part);
        if !changes.is_empty() {
            options = options.changes(changes.to_vec());
        }
        let mut stream = self.docker.create_image(
            Some(options.build()),
            Some(bollard::body_try_stream(counted)),
            None,
        );
        // The engine reports the new image's ID as the last status; Podman
        // 4.3 ignores `tag` on import (the image lands as `repo:latest`), so
        // the ID is what gets tagged when the name is not there.
        let mut reported = None;
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| import_err(e.to_string()))?;
            if let Some(status) = info.status.filter(|s| is_image_id(s)) {
                reported = Some(status);
            }
        }
        bar.finish_and_clear();
        if self.inspect_image(tag).await?.is_none()
            && let Some(id) = &reported
        {
            self.tag_image(id, tag).await?;
            // ... and drop the `:latest` name it put there instead.
            let latest = format!("{repo}:latest");
            if tag_part != "latest"
                && self
                    .inspect_image(&latest)
                    .await?
                    .is_some_and(|i| i.id.ends_with(id.trim_start_matches("sha256:")))
            {
                self.remove_unused_image(&latest).await?;
            }
        }
        let info = self.inspect_image(tag).await?.ok_or_else(|| {
            import_err(format!(
                "image missing after import (the engine reported {})",
                reported.as_deref().unwrap_or("no image ID")
            ))
        })?;
        Ok(info.id)
    }

    /// Loads a docker-archive tarball (`manifest.json` + config + layer
    /// tars, what `docker save` writes) through `POST /images/load`, and
    /// returns what the engine reports: the loaded tag or image ID.
    /// Docker 20.10 loads this format; it does not load OCI layouts.
    #[instrument(skip_all, fields(tar = %tar_path.display()))]
    pub async fn load_image_archive(&self, tar_path: &Path) -> Result<String, EngineError> {
        let load_err = |reason: String| EngineError::Io {
            action: format!("load image archive {}", tar_path.display()),
            source: std::io::Error::other(reason),
        };
        let file = tokio::fs::File::open(tar_path)
            .await
            .map_err(|e| load_err(e.to_string()))?;
        let size = file.metadata().await.map(|m| m.len()).ok();
        let bar = progress::bytes("load image", size);
        let counted = {
            let bar = bar.clone();
            tokio_util::io::ReaderStream::new(file).inspect(move |chunk| {
                if let Ok(c) = chunk {
                    bar.inc(c.len() as u64);
                }
            })
        };
        let options = bollard::query_parameters::ImportImageOptionsBuilder::default()
            .quiet(true)
            .build();
        let mut stream = self
            .docker
            .import_image(options, bollard::body_try_stream(counted), None);
        let mut loaded = None;
        while let Some(item) = stream.next().await {
            let item = item.map_err(|e| load_err(e.to_string()))?;
            if let Some(text) = item.stream.as_deref() {
                for line in text.lines() {
                    if let Some(rest) = line
                        .strip_prefix("Loaded image: ")
                        .or_else(|| line.strip_prefix("Loaded image ID: "))
                    {
                        loaded = Some(rest.trim().to_string());
                    }
                }
            }
        }
        bar.finish_and_clear();
        loaded.ok_or_else(|| load_err("the engine did not report a loaded image".into()))
    }

    /// Streams an image (by tag or ID) out of the engine as a docker-archive
    /// tarball (`GET /images/{name}/get`, what `docker save` writes) into
    /// `dest`, and returns its size. With [`Engine::load_image_archive`] on
    /// another engine this moves an image between engines, local or remote,
    /// keeping its image ID (and, saved by tag, its tag).
    #[instrument(skip_all, fields(image = %reference))]
    pub async fn save_image(&self, reference: &str, dest: &Path) -> Result<u64, EngineError> {
        use tokio::io::AsyncWriteExt;
        let save_err = |reason: String| EngineError::Io {
            action: format!("save image {reference} to {}", dest.display()),
            source: std::io::Error::other(reason),
        };
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|e| save_err(e.to_string()))?;
        let bar = progress::bytes(format!("save {reference}"), None);
        let mut stream = self.docker.export_image(reference);
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| save_err(e.to_string()))?;
            file.write_all(&chunk)
                .await
                .map_err(|e| save_err(e.to_string()))?;
            written += chunk.len() as u64;
            bar.set_position(written);
        }
        file.flush().await.map_err(|e| save_err(e.to_string()))?;
        bar.finish_and_clear();
        Ok(written)
    }

    /// Builds an image from a Dockerfile context with the classic builder,
    /// streaming its output to the log (and to stderr with `-v`).
    #[instrument(skip_all, fields(tag = %spec.tag))]
    pub async fn build_image(&self, spec: &BuildImageSpec) -> Result<String, EngineError> {
        let build_err = |reason: String| EngineError::Build {
            tag: spec.tag.clone(),
            reason,
            log: spec.log.clone(),
        };
        if let Some(dir) = spec.log.parent() {
            fs_err::create_dir_all(dir).map_err(|e| build_err(e.to_string()))?;
        }
        let log = fs_err::File::create(&spec.log).map_err(|e| build_err(e.to_string()))?;
        // The same line handling as a container step's output: whole lines
        // (the engine's messages split lines anywhere), a capped log without
        // escape codes, a bounded tail.
        let mut log = super::stream::LogSink::new(log, 0, super::stream::LOG_LIMIT);
        let mut lines = super::stream::LineSplitter::default();
        let file = tokio::fs::File::open(&spec.context_tar)
            .await
            .map_err(|e| build_err(e.to_string()))?;
        let options = BuildImageOptionsBuilder::default()
            .dockerfile(&spec.dockerfile)
            .t(&spec.tag)
            .rm(true)
            .forcerm(true)
            .nocache(spec.no_cache)
            .buildargs(&spec.build_args)
            .labels(&spec.labels)
            .build();
        let body = bollard::body_try_stream(tokio_util::io::ReaderStream::new(file));
        let mut stream = self.docker.build_image(options, None, Some(body));
        let phase = progress::Phase::start("image-build", format!("building {}", spec.tag));
        let mut image_id = None;
        let mut last_lines: Vec<String> = Vec::new();
        while let Some(item) = stream.next().await {
            let item = match item {
                Ok(item) => item,
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(build_err(format!("{error}{}", tail_suffix(&last_lines))));
                }
                Err(e) => return Err(build_err(e.to_string())),
            };
            if let Some(text) = item.stream.as_deref() {
                for line in lines.push(text.as_bytes()) {
                    self.build_line(&line.text, &mut log, &phase, &spec.tag, &mut last_lines);
                }
            }
            if let Some(detail) = item.error_detail {
                return Err(build_err(format!(
                    "{}{}",
                    detail.message.unwrap_or_default(),
                    tail_suffix(&last_lines)
                )));
            }
            if let Some(id) = item.aux.and_then(|aux| aux.id) {
                image_id = Some(id);
            }
        }
        if let Some(line) = lines.finish() {
            self.build_line(&line.text, &mut log, &phase, &spec.tag, &mut last_lines);
        }
        phase.finish();
        match image_id {
            Some(id) => Ok(id),
            None => Ok(self
                .inspect_image(&spec.tag)
                .await?
                .ok_or_else(|| build_err("no image produced".into()))?
                .id),
        }
    }

    /// One whole line of an image build's output: to the log, to stderr
    /// with `-v`, into the phase message (build steps) and the tail.
    fn build_line(
        &self,
        line: &str,
        log: &mut super::stream::LogSink<fs_err::File>,
        phase: &progress::Phase,
        tag: &str,
        last_lines: &mut Vec<String>,
    ) {
        log.line(line);
        if self.stream_output {
            // Outside text: colour codes dropped, the rest escaped; a closed
            // stderr ends the run through `term::closed`, so the error needs
            // no handling.
            let shown =
                crate::term::escape_output(&super::stream::strip_escapes(line)).into_owned();
            let _ = crate::term::write_stderr(format!("{shown}\n").as_bytes());
        }
        // Docker prints `Step n/m :`, Podman `STEP n/m:`.
        if line.starts_with("Step ") || line.starts_with("STEP ") {
            phase.step(format!(
                "{tag}: {}",
                crate::term::escape(truncate(line, 100))
            ));
        }
        last_lines.push(line.to_string());
        if last_lines.len() > 40 {
            last_lines.drain(..last_lines.len() - 40);
        }
    }

    /// The images carrying a label (`key` or `key=value`).
    pub async fn images_labelled(&self, label: &str) -> Result<Vec<ImageInfo>, EngineError> {
        let filters = HashMap::from([("label", vec![label.to_string()])]);
        let options = ListImagesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_images(Some(options))
            .await
            .map_err(EngineError::api("list images"))?;
        Ok(list
            .into_iter()
            .map(|s| ImageInfo {
                id: s.id,
                repo_tags: s.repo_tags,
                repo_digests: s.repo_digests,
                labels: s.labels,
                size: s.size,
            })
            .collect())
    }

    /// Removes an image by tag or ID unless a container, running or
    /// stopped, uses it (or, given by ID, it has several tags): `Ok(false)`
    /// when the engine refuses (how each engine says so is
    /// [`EngineKind::refuses_removal`]), `Ok(true)` when it is gone (or was
    /// never there). Not forced, so nothing in use is untagged.
    ///
    /// [`EngineKind::refuses_removal`]: super::EngineKind::refuses_removal
    pub async fn remove_unused_image(&self, reference: &str) -> Result<bool, EngineError> {
        let options = RemoveImageOptionsBuilder::default().build();
        match self
            .docker
            .remove_image(reference, Some(options), None)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code,
                message,
            }) if self.kind.refuses_removal(status_code, &message) => Ok(false),
            Err(source) => Err(EngineError::Api {
                action: "remove image",
                source: Box::new(source),
            }),
        }
    }

    /// Tags an image (`repo:tag`).
    pub async fn tag_image(&self, image: &str, tag: &str) -> Result<(), EngineError> {
        let (repo, tag_part) = tag.rsplit_once(':').unwrap_or((tag, "latest"));
        let options = bollard::query_parameters::TagImageOptionsBuilder::default()
            .repo(repo)
            .tag(tag_part)
            .build();
        debug!(image, tag, "tagging image");
        self.docker
            .tag_image(image, Some(options))
            .await
            .map_err(|source| EngineError::Api {
                action: "tag image",
                source: Box::new(source),
            })
    }
}

/// Whether an image's registry digests include the pinned one: the check
/// that refuses an image whose digest differs from its pin.
fn has_digest(repo_digests: &[String], digest: &str) -> bool {
    repo_digests
        .iter()
        .any(|d| d.rsplit_once('@').is_some_and(|(_, got)| got == digest))
}

/// Splits `name@sha256:<64 hex>` into its name and digest.
pub fn split_pinned(reference: &str) -> Result<(&str, &str), EngineError> {
    let not_pinned = || EngineError::NotPinned {
        reference: reference.into(),
    };
    let (name, digest) = reference.rsplit_once('@').ok_or_else(not_pinned)?;
    let hex = digest.strip_prefix("sha256:").ok_or_else(not_pinned)?;
    if name.is_empty()
        || hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err(not_pinned());
    }
    Ok((name, digest))
}

fn tail_suffix(lines: &[String]) -> String {
    let start = lines.len().saturating_sub(12);
    if lines[start..].is_empty() {
        String::new()
    } else {
        format!("\n  | {}", lines[start..].join("\n  | "))
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `sha256:<64 hex>` or a bare 64-hex image ID, as import streams report.
fn is_image_id(status: &str) -> bool {
    let hex = status.trim().trim_start_matches("sha256:");
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_statuses_that_are_image_ids() {
        let hex = "0b683e15a443aab6cd85e5079fa9cdbf0c91bb38858e133d021ea5525384e0cc";
        assert!(is_image_id(hex));
        assert!(is_image_id(&format!("sha256:{hex}\n")));
        assert!(!is_image_id("Loaded image"));
        assert!(!is_image_id(&hex[1..]));
    }

    #[test]
    fn digest_must_match_the_pin() {
        let pin = format!("sha256:{}", "a".repeat(64));
        let other = format!("registry.example/app@sha256:{}", "b".repeat(64));
        assert!(!has_digest(std::slice::from_ref(&other), &pin));
        assert!(!has_digest(&[], &pin));
        assert!(has_digest(
            &[other, format!("registry.example/app@{pin}")],
            &pin
        ));
    }

    #[test]
    fn pinned_references() {
        let r = "quay.io/pypa/manylinux_2_28_x86_64@sha256:0c87ccb5996dab6c3b7612ee4fda7b80c4ab3c44a86c2541e4a872afdf4f131b";
        let (name, digest) = split_pinned(r).unwrap();
        assert_eq!(name, "quay.io/pypa/manylinux_2_28_x86_64");
        assert!(digest.starts_with("sha256:0c87"));
        assert!(split_pinned("debian:bookworm").is_err());
        assert!(split_pinned("x@sha256:abc").is_err());
    }
}

//! One function per subcommand: turns settings into library calls and
//! prints results (text for people, `--json` for machines) on stdout.
//! Logs and progress go to stderr.

use serde::Serialize;

use crate::builder;
use crate::catalog;
use crate::engine::{self, ConnectOptions, ContainerSpec, Engine, ExecSpec, Network};
use crate::glibc::Glibc;
use crate::term::shown;
use crate::{Error, Outcome, Result};

/// Settings every command shares.
#[derive(Debug, Clone, Default)]
pub struct GlobalSettings {
    /// `--engine-socket`: the engine endpoint, overriding `DOCKER_HOST` and `CONTAINER_HOST`.
    pub engine_socket: Option<String>,
    /// `-v` count: 1 streams container output, 2 adds debug logs.
    pub verbose: u8,
}

/// `hermetic images build`.
#[derive(Debug, Clone)]
pub struct ImagesBuildSettings {
    /// Baselines whose local builders to make.
    pub glibc: Vec<Glibc>,
    /// Runtime bases to make, by Debian suite.
    pub bases: Vec<String>,
    /// Rebuild even when a cached image matches the inputs.
    pub force: bool,
    /// Print JSON on stdout instead of text.
    pub json: bool,
}

/// `hermetic exec`.
#[derive(Debug, Clone)]
pub struct ExecSettings {
    /// Baseline whose builder runs the command.
    pub glibc: Glibc,
    /// A builder image to use instead of the catalog's.
    pub builder_image: Option<String>,
    /// Only the catalog's upstream or only its local builder; `None` tries upstream first.
    pub builder_source: Option<crate::catalog::Source>,
    /// Give the container network access and the host's CA bundle.
    pub network: bool,
    /// The command and its arguments.
    pub command: Vec<String>,
}

/// `hermetic build`.
#[derive(Debug, Clone)]
pub struct BuildCommandSettings {
    /// The recipe; default: `hermetic.toml` in the current directory.
    pub recipe: Option<std::path::PathBuf>,
    /// What to build and how (baselines, output, builder choice).
    pub settings: crate::plan::BuildSettings,
    /// Print the plan and stop.
    pub plan_only: bool,
    /// Print JSON on stdout instead of text.
    pub json: bool,
}

/// `hermetic build`: plan, then (unless `--plan`) execute.
pub async fn build(global: &GlobalSettings, s: BuildCommandSettings) -> Result<Outcome> {
    let path = match s.recipe {
        Some(p) => p,
        None => crate::recipe::Recipe::find_default(&std::env::current_dir()?)?,
    };
    let recipe = crate::recipe::Recipe::load(&path)?;
    let epoch = crate::archive::source_date_epoch(&recipe.dir, recipe.source_date_epoch)?;
    let plan = crate::plan::from_recipe(&recipe, &s.settings, epoch)?;
    if s.plan_only {
        if s.json {
            print_json(&plan)?;
        } else {
            for t in &plan.targets {
                crate::outln!(
                    "{} {} for glibc {} -> {}",
                    plan.name,
                    plan.version,
                    t.glibc,
                    plan.out_dir.join(&t.archive_name).display()
                )?;
                for (i, step) in t.steps.iter().enumerate() {
                    let net = if step.network { "network" } else { "offline" };
                    crate::outln!(
                        "  {:>2}. [{:<6} {net:<7}] {}",
                        i + 1,
                        step.phase,
                        step.description
                    )?;
                }
            }
        }
        return Ok(Outcome::Success);
    }
    let engine = connect(global).await?;
    let report = crate::build::run(&engine, &plan, host_ca_bundle()?).await?;
    if s.json {
        print_json(&report)?;
    } else {
        let e = &report.engine;
        let tls = if e.tls { " (TLS)" } else { "" };
        crate::errln!(
            "engine: {} {} at {}{tls}",
            e.kind,
            e.server_version,
            e.endpoint
        )?;
        for t in &report.targets {
            let how = if t.cached { " (cached)" } else { "" };
            crate::outln!("{}{how}", report.out_dir.join(&t.archive).display())?;
            crate::outln!(
                "  sha256 {}  {} bytes, {} vendored libraries",
                t.sha256,
                t.size,
                t.vendored_libs
            )?;
            crate::outln!("  record {}, provenance {}", t.record, t.provenance)?;
            if let Some(smoke) = &t.smoke {
                let verdict = if smoke.passed { "passed" } else { "FAILED" };
                crate::outln!(
                    "  smoke on {} at {:?}: {verdict} (exit {})",
                    smoke.suite,
                    smoke.path,
                    smoke.exit_code
                )?;
                if !smoke.passed {
                    for line in &smoke.stdout_tail {
                        crate::outln!("  | {}", shown(line))?;
                    }
                    if let Some(dir) = &smoke.evidence {
                        crate::outln!(
                            "  evidence kept in {} (the unpacked bundle, the smoke output, a summary)",
                            shown(dir)
                        )?;
                    }
                }
            }
        }
        if !report.passed {
            crate::errln!(
                "error: the smoke test failed; nothing was written to {}",
                report.out_dir.display()
            )?;
        }
    }
    Ok(if report.passed {
        Outcome::Success
    } else {
        Outcome::CheckFailed
    })
}

/// `hermetic audit <dir|archive|file> --glibc X [--json]`: exit 0 when the
/// tree complies with the baseline's policy, 1 when it does not (a corrupt
/// ELF file inside the tree is a finding for that file), 2 when the input
/// cannot be audited (a damaged archive; a single file that is empty or not
/// a valid ELF file).
pub async fn audit(path: std::path::PathBuf, glibc: Glibc, json: bool) -> Result<Outcome> {
    let report = tokio::task::spawn_blocking(move || crate::elf::audit::audit_path(&path, glibc))
        .await
        .map_err(std::io::Error::other)??;
    if json {
        print_json(&report)?;
    } else {
        crate::term::write_stdout(report.render_text().as_bytes())?;
    }
    Ok(if report.compliant {
        Outcome::Success
    } else {
        Outcome::CheckFailed
    })
}

/// `hermetic sbom <dir|archive> [-o FILE]`: the SBOM of an existing bundle,
/// from the metadata recorded in it.
pub async fn sbom(path: std::path::PathBuf, output: Option<std::path::PathBuf>) -> Result<Outcome> {
    let bytes = tokio::task::spawn_blocking(move || crate::sbom::generate_for_path(&path))
        .await
        .map_err(std::io::Error::other)??;
    match output {
        Some(out) => {
            let dir = out
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let tmp = tempfile::NamedTempFile::new_in(dir)?;
            fs_err::write(tmp.path(), &bytes)?;
            tmp.persist(&out).map_err(|e| e.error)?;
        }
        None => crate::term::write_stdout(&bytes)?,
    }
    Ok(Outcome::Success)
}

/// `hermetic image <bundle>`: an OCI image built without a Dockerfile,
/// written as a layout, loaded into the engine and/or pushed.
pub async fn image(
    global: &GlobalSettings,
    settings: crate::oci::ImageSettings,
    json: bool,
) -> Result<Outcome> {
    let engine = if settings.load {
        Some(connect(global).await?)
    } else {
        None
    };
    let report = crate::oci::image(&settings, engine.as_ref()).await?;
    if json {
        print_json(&report)?;
    } else {
        crate::outln!("{}:{} {}", report.name, report.tag, report.manifest_digest)?;
        crate::outln!("  base {} (sha256:{})", report.base, report.base_sha256)?;
        for layer in &report.layers {
            crate::outln!(
                "  layer {:?} {} {} bytes",
                layer.role,
                layer.digest,
                layer.size
            )?;
        }
        if let Some(dir) = &report.oci_layout {
            crate::outln!("  OCI layout: {}", dir.display())?;
        }
        if let Some(id) = &report.loaded {
            crate::outln!("  loaded: {id}")?;
        }
        if let Some(pushed) = &report.pushed {
            crate::outln!("  pushed: {}", pushed.pinned)?;
        }
    }
    Ok(Outcome::Success)
}

/// `hermetic push <oci-layout> <ref>`.
pub async fn push(settings: crate::oci::PushSettings, json: bool) -> Result<Outcome> {
    let report = crate::oci::push(&settings).await?;
    if json {
        print_json(&report)?;
    } else {
        crate::outln!("{}", report.pinned)?;
        for tag in &report.tags {
            crate::outln!("tagged {tag}")?;
        }
    }
    Ok(Outcome::Success)
}

/// Reads a password from stdin (first line, trailing newline removed).
pub fn read_password_stdin() -> Result<crate::oci::Secret> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(crate::oci::Secret::new(line.trim_end_matches(['\n', '\r'])))
}

/// `hermetic verify`.
#[derive(Debug, Clone)]
pub struct VerifySettings {
    /// A build record to rebuild from.
    pub record: Option<std::path::PathBuf>,
    /// A release directory to re-hash instead.
    pub checksums: Option<std::path::PathBuf>,
    /// The recipe, when it is not at the path the record names.
    pub recipe: Option<std::path::PathBuf>,
    /// Print JSON on stdout instead of text.
    pub json: bool,
}

/// The recipe a record names, at the hash it records. Looked for with
/// `--recipe`, else by the record's path in the current directory, at the top
/// of the git work tree the current directory is in (a verifier's fresh
/// clone), then beside the record's directory; the first copy with the
/// recorded hash wins, so a stale copy is never used, and when none matches
/// the error lists every copy tried with its hash.
fn find_recorded_recipe(
    record: &crate::manifest::BuildRecord,
    record_path: &std::path::Path,
    record_dir: &std::path::Path,
    given: Option<&std::path::Path>,
) -> Result<std::path::PathBuf> {
    use crate::verify::{self as v, VerifyError};
    use std::path::PathBuf;
    let candidates: Vec<PathBuf> = match given {
        Some(p) => vec![p.to_path_buf()],
        None => {
            let mut bases = vec![PathBuf::from(".")];
            if let Some(top) = std::process::Command::new("git")
                .args(["rev-parse", "--show-toplevel"])
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8(o.stdout).ok())
            {
                bases.push(PathBuf::from(top.trim()));
            }
            // The usual layout: <project>/dist/<record> beside <project>/<recipe>.
            bases.push(record_dir.join(".."));
            bases.push(record_dir.to_path_buf());
            // The name is confined to each directory like any other name a
            // record gives (no `..`, no absolute path, no symlink out of it).
            let listed_in = record_path.display().to_string();
            bases
                .iter()
                .map(|base| v::inside(base, &record.recipe.path, &listed_in))
                .collect::<Result<_, _>>()?
        }
    };
    let mut tried = Vec::new();
    for path in &candidates {
        let seen = std::path::absolute(path).unwrap_or(path.clone());
        if !path.is_file() || tried.iter().any(|(p, _): &(PathBuf, String)| *p == seen) {
            continue;
        }
        let (hash, _) = crate::archive::sha256_file(path)?;
        if hash == record.recipe.sha256 {
            return Ok(path.clone());
        }
        tried.push((std::path::absolute(path).unwrap_or(path.clone()), hash));
    }
    let what = if tried.is_empty() {
        format!(
            "the recipe {} (looked in {}; pass --recipe)",
            record.recipe.path,
            candidates
                .iter()
                .map(|p| std::path::absolute(p)
                    .unwrap_or(p.clone())
                    .display()
                    .to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        format!(
            "the recipe {} at the recorded sha256 {}: {}",
            record.recipe.path,
            record.recipe.sha256,
            tried
                .iter()
                .map(|(p, h)| format!("{} has sha256 {h}", p.display()))
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    Err(VerifyError::MissingInput { what }.into())
}

/// `hermetic verify <record>` / `--checksums <dir>`: exit 0 when everything
/// matches, 1 on a mismatch (every differing file listed).
pub async fn verify(global: &GlobalSettings, s: VerifySettings) -> Result<Outcome> {
    use crate::verify::{self as v, VerifyError};
    let report = match (&s.checksums, &s.record) {
        (Some(dir), _) => v::verify_checksums(dir)?,
        (None, Some(record_path)) => {
            let record = v::load_record(record_path)?;
            let record_dir = record_path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let recipe_path =
                find_recorded_recipe(&record, record_path, record_dir, s.recipe.as_deref())?;
            let recipe = crate::recipe::Recipe::load(&recipe_path)?;
            let scratch = tempfile::Builder::new()
                .prefix(".hermetic-verify-")
                .tempdir_in(record_dir)?;
            let builder = if record.builder.reference.contains('@') {
                record.builder.reference.clone()
            } else {
                record.builder.image_id.clone()
            };
            let settings = crate::plan::BuildSettings {
                glibc: vec![record.glibc],
                out_dir: scratch.path().to_path_buf(),
                builder_image: Some(builder.clone()),
                builder_source: None,
                smoke_suite: None,
                rebuild: true,
                replay: Some(crate::plan::Replay {
                    source_tree_sha256: record.source_tree_sha256.clone(),
                    source_files: record.source_files.clone(),
                    inputs: record.inputs.clone(),
                    system_packages: record.system_packages.clone(),
                }),
            };
            let plan = crate::plan::from_recipe(&recipe, &settings, record.source_date_epoch)?;
            let engine = connect(global).await?;
            // A builder named by image ID (a local one) cannot be pulled,
            // but it is reproducible: made again from the recorded catalog
            // inputs and package versions it gets the recorded ID.
            if !builder.contains('@') && engine.inspect_image(&builder).await?.is_none() {
                let Some(inputs_hash) = &record.builder.inputs_hash else {
                    let here = engine
                        .inspect_image(&record.builder.reference)
                        .await?
                        .map(|i| i.id);
                    return Err(VerifyError::MissingBuilder {
                        image_id: record.builder.image_id.clone(),
                        reference: record.builder.reference.clone(),
                        here,
                    }
                    .into());
                };
                tracing::warn!(
                    "the recorded builder {} ({}) is not on this engine: making it from its \
                     recorded catalog inputs {inputs_hash} and {} package versions (minutes)",
                    record.builder.image_id,
                    record.builder.reference,
                    record.builder.packages.len()
                );
                let pins = builder::make::Pins {
                    against: format!("the build record {}", record_path.display()),
                    packages: record.builder.packages.clone(),
                };
                let ready = builder::make::remake_recorded(
                    &engine,
                    record.glibc,
                    inputs_hash,
                    &record.builder.image_id,
                    pins,
                )
                .await?;
                tracing::warn!(
                    "builder {} remade with the recorded image ID in {} s; verifying",
                    ready.image_id,
                    ready.elapsed_ms / 1000
                );
            }
            let built = crate::build::run(&engine, &plan, host_ca_bundle()?).await?;
            if !built.passed {
                crate::errln!("error: the rebuild's smoke test failed")?;
                return Ok(Outcome::CheckFailed);
            }
            v::compare_outputs(&record, record_path, scratch.path())?
        }
        (None, None) => {
            return Err(Error::Usage(
                "verify needs a build record or --checksums <dir>".into(),
            ));
        }
    };
    if s.json {
        print_json(&report)?;
    } else {
        let rebuild = report.mode == "rebuild";
        for o in &report.outputs {
            let verdict = match (rebuild, o.ok) {
                (true, true) => "identical",
                (true, false) => "DIFFERENT",
                (false, true) => "ok",
                (false, false) => "MISMATCH",
            };
            crate::outln!("{verdict:<9} {}", shown(&o.name))?;
            if !o.ok {
                crate::outln!("          expected sha256 {}", o.expected_sha256)?;
                crate::outln!(
                    "          got      {}",
                    o.actual_sha256.as_deref().unwrap_or("(missing)")
                )?;
            }
        }
        for d in &report.differences {
            let show = |f: &Option<crate::verify::FileFacts>| {
                f.as_ref()
                    .map(|f| format!("{} bytes, sha256 {}", f.size, f.sha256))
                    .unwrap_or_else(|| "absent".into())
            };
            crate::outln!("differs   {}: {}", shown(&d.archive), shown(&d.path))?;
            crate::outln!("          expected {}", show(&d.expected))?;
            crate::outln!("          rebuilt  {}", show(&d.actual))?;
            for line in &d.detail {
                crate::outln!("          {}", shown(line))?;
            }
        }
        crate::outln!("{}", shown(&report.summary))?;
    }
    Ok(if report.matched {
        Outcome::Success
    } else {
        Outcome::CheckFailed
    })
}

/// Connects to the engine named by the settings (or found by default).
pub async fn connect(global: &GlobalSettings) -> Result<Engine> {
    let mut engine = engine::connect(&ConnectOptions {
        socket: global.engine_socket.clone(),
        ..Default::default()
    })
    .await?;
    engine.set_stream_output(global.verbose > 0);
    Ok(engine)
}

/// `hermetic images list [--json]`.
pub async fn images_list(global: &GlobalSettings, json: bool) -> Result<Outcome> {
    let engine = connect(global).await?;
    let rows = builder::list(&engine).await?;
    if json {
        print_json(&rows)?;
    } else {
        crate::outln!(
            "{:<8} {:<6} {:<10} {:<9} {:<8} REFERENCE / IMAGE ID",
            "ROLE",
            "GLIBC",
            "SOURCE",
            "SUITE",
            "PRESENT"
        )?;
        let mut fallbacks = Vec::new();
        for r in &rows {
            let source = match (r.source, r.kind) {
                (catalog::Source::Upstream, _) => "upstream",
                (catalog::Source::Local, catalog::Kind::Toolchain) => "toolchain",
                (catalog::Source::Local, catalog::Kind::Distro) => "local",
            };
            if r.role == "builder"
                && r.source == catalog::Source::Local
                && rows.iter().any(|o| {
                    o.role == "builder"
                        && o.glibc == r.glibc
                        && o.source == catalog::Source::Upstream
                })
            {
                fallbacks.push(r.glibc.to_string());
            }
            let present = match (r.present, r.stale) {
                (true, true) => "stale",
                (true, false) => "yes",
                (false, _) => "no",
            };
            let what = match (&r.reference, &r.image_id) {
                (Some(reference), Some(id)) if !reference.contains('@') => {
                    format!("{reference} ({id})")
                }
                (Some(reference), _) => reference.clone(),
                (None, _) if r.role == "builder" => format!(
                    "(not built: made on first use, or `hermetic images build --glibc {}`)",
                    r.glibc
                ),
                (None, _) => format!(
                    "(not built: made on first use, or `hermetic images build --base {}`)",
                    r.suite.as_deref().unwrap_or("-")
                ),
            };
            let what = if r.origin == "shipped" {
                what
            } else {
                format!("{what}  [from {}]", r.origin)
            };
            crate::outln!(
                "{:<8} {:<6} {:<10} {:<9} {:<8} {}",
                r.role,
                r.glibc.to_string(),
                source,
                r.suite.as_deref().unwrap_or("-"),
                present,
                shown(&what)
            )?;
        }
        if !fallbacks.is_empty() {
            crate::outln!(
                "glibc {}: the upstream builder is the default; when no registry answers, or with \
                 `--builder-source local`, the local one is used (a toolchain builder: zig \
                 targeting that glibc; made on first use, or `hermetic images build --glibc {}`)",
                fallbacks.join(", "),
                fallbacks.join(",")
            )?;
        }
    }
    Ok(Outcome::Success)
}

/// `hermetic images load <archive>`.
pub async fn images_load(
    global: &GlobalSettings,
    archive: &std::path::Path,
    json: bool,
) -> Result<Outcome> {
    let engine = connect(global).await?;
    let report = builder::load::load_archive(&engine, archive).await?;
    if json {
        print_json(&report)?;
    } else {
        crate::outln!(
            "loaded {} as {} ({}): the glibc {} builder {} ({}; {} checked)",
            crate::term::shown(&report.archive.display().to_string()),
            report.tag,
            report.image_id,
            report.glibc,
            report.reference,
            report.origin,
            report.checked,
        )?;
    }
    Ok(Outcome::Success)
}

/// `hermetic images build --glibc …` / `--base …`.
pub async fn images_build(
    global: &GlobalSettings,
    settings: ImagesBuildSettings,
) -> Result<Outcome> {
    let engine = connect(global).await?;
    #[derive(Serialize)]
    struct Row {
        kind: &'static str,
        name: String,
        #[serde(flatten)]
        image: builder::ReadyImage,
    }
    let mut rows = Vec::new();
    for suite in &settings.bases {
        let image = builder::ensure_base(&engine, suite, settings.force).await?;
        rows.push(Row {
            kind: "base",
            name: suite.clone(),
            image,
        });
    }
    for glibc in &settings.glibc {
        let image = builder::build_local_builder(&engine, *glibc, settings.force).await?;
        rows.push(Row {
            kind: "builder",
            name: format!("glibc {glibc}"),
            image,
        });
    }
    if settings.json {
        print_json(&rows)?;
    } else {
        for r in rows {
            let how = if r.image.cached { "cached" } else { "built" };
            crate::outln!(
                "{} {}: {} {} ({how}, {:.1}s)",
                r.kind,
                r.name,
                r.image.tag,
                r.image.image_id,
                r.image.elapsed_ms as f64 / 1000.0
            )?;
        }
    }
    Ok(Outcome::Success)
}

/// `hermetic exec --glibc X -- cmd…`: one command in a fresh builder
/// container, output streamed, container removed afterwards.
pub async fn exec(global: &GlobalSettings, settings: ExecSettings) -> Result<Outcome> {
    let mut engine = connect(global).await?;
    let builder = builder::resolve_builder(
        &engine,
        settings.glibc,
        settings.builder_image.as_deref(),
        settings.builder_source,
        None,
    )
    .await?;
    // Only the user's command streams: the resolver's probes (a builder's
    // whole dpkg status, 70 KB, when the lock does not know the image) are
    // hermetic's business, on the terminal only with `-v`.
    engine.set_stream_output(true);
    let network = if settings.network {
        Network::Default
    } else {
        Network::None
    };
    let mut env = Vec::new();
    let ca = if settings.network {
        Some(host_ca_bundle()?)
    } else {
        None
    };
    if ca.is_some() {
        env.extend(engine::CA_ENV.iter().map(|(k, v)| format!("{k}={v}")));
    }
    let spec = ContainerSpec {
        image: builder.image_id.clone(),
        build_id: format!("exec-{}", std::process::id()),
        role: "exec".into(),
        network,
        hardened: !settings.network,
        env,
        user: None,
    };
    let container = engine.create_container(&spec).await?;
    let result = async {
        if let Some(pem) = &ca {
            container.install_ca_bundle(pem).await?;
        }
        container
            .exec(&ExecSpec {
                cmd: settings.command.clone(),
                ..Default::default()
            })
            .await
    }
    .await;
    container.remove().await;
    let output = result?;
    Ok(if output.exit_code == 0 {
        Outcome::Success
    } else {
        Outcome::CheckFailed
    })
}

/// `hermetic gc`: leftover containers; with `images`, also the derived
/// builder images (the builder plus a recipe's system packages), which are
/// caches: a build or `verify` makes them again from the recorded packages.
pub async fn gc(global: &GlobalSettings, all: bool, images: bool, json: bool) -> Result<Outcome> {
    let engine = connect(global).await?;
    let mut report = engine.gc(all).await?;
    report.removed_staging = crate::build::staging::gc(&crate::paths::home(), all)?;
    if all {
        report.removed_evidence = crate::build::smoke::gc_evidence(&crate::paths::home())?;
    }
    if images {
        let (key, value) = crate::build::fetch::DERIVED_IMAGE_LABEL;
        for image in engine.images_labelled(&format!("{key}={value}")).await? {
            let names = match image.repo_tags.as_slice() {
                [] => vec![image.id.clone()],
                tags => tags.to_vec(),
            };
            for name in names {
                if engine.remove_unused_image(&name).await? {
                    report.removed_images.push(name);
                } else {
                    report.kept_images_in_use.push(name);
                }
            }
        }
    }
    if json {
        print_json(&report)?;
    } else {
        crate::outln!("removed {} container(s)", report.removed.len())?;
        for dir in &report.removed_staging {
            crate::outln!(
                "removed staging directory {}",
                crate::term::shown(&dir.display().to_string())
            )?;
        }
        for dir in &report.removed_evidence {
            crate::outln!(
                "removed failed smoke test evidence {}",
                crate::term::shown(&dir.display().to_string())
            )?;
        }
        if !report.skipped_live.is_empty() {
            crate::outln!(
                "kept {} container(s) of hermetic processes still running (--all removes them too)",
                report.skipped_live.len()
            )?;
        }
        if images {
            crate::outln!(
                "removed {} derived builder image(s)",
                report.removed_images.len()
            )?;
            if !report.kept_images_in_use.is_empty() {
                crate::outln!(
                    "kept {} derived builder image(s) that containers use: {}",
                    report.kept_images_in_use.len(),
                    report.kept_images_in_use.join(", ")
                )?;
            }
        }
    }
    Ok(Outcome::Success)
}

/// The host's CA bundle (`$SSL_CERT_FILE`, else the system bundle), handed
/// to containers that fetch so TLS-inspecting proxies are trusted.
pub fn host_ca_bundle() -> Result<Vec<u8>> {
    let candidates = std::env::var_os("SSL_CERT_FILE")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain(
            [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
            ]
            .map(Into::into),
        );
    for path in candidates {
        if path.is_file() {
            return Ok(fs_err::read(&path)?);
        }
    }
    Err(Error::Usage(
        "no CA bundle found: set SSL_CERT_FILE to the host's CA bundle".into(),
    ))
}

/// Resolves when SIGINT or SIGTERM arrives; returns the signal's number.
pub async fn shutdown_signal() -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without signal handlers, never resolve: the command runs unguarded.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => libc::SIGINT,
        _ = term.recv() => libc::SIGTERM,
    }
}

/// Cleans up after a signal and returns the error to exit with.
pub async fn interrupted(signal: i32) -> Error {
    let removed = engine::cleanup_live_containers().await;
    tracing::warn!(removed, "interrupted; removed hermetic's containers");
    Error::Interrupted { signal }
}

/// Runs one command under the guard every run of the binary has: it ends
/// early on SIGINT/SIGTERM ([`interrupted`]), when stdout or stderr is
/// found closed ([`crate::term::closed`]: `hermetic … | head`), and when
/// the command panics; and whichever way it ended, every container this
/// process made and has not removed yet is removed before it returns, so
/// that no container outlives hermetic.
pub async fn run_guarded<F>(command: F) -> Result<Outcome>
where
    F: std::future::Future<Output = Result<Outcome>>,
{
    use futures_util::FutureExt;
    // The command is dropped (and its work abandoned) on every early exit;
    // nothing it shares with the cleanup below is left half-updated by a
    // panic (the container registry is a Mutex, taken only briefly).
    let command = std::panic::AssertUnwindSafe(command).catch_unwind();
    // Synchronous work (a finish phase unpacking and archiving gigabytes)
    // holds this thread, so the select below cannot see a signal until it
    // yields; this task, on another worker, sets the flag that work polls
    // ([`crate::cancel`]), and it fails within milliseconds.
    let watcher = tokio::spawn(async { crate::cancel::request(shutdown_signal().await) });
    let result = tokio::select! {
        result = command => result.unwrap_or(Err(Error::Panicked)),
        signal = shutdown_signal() => return Err(interrupted(signal).await),
        stream = crate::term::closed() => Err(Error::OutputClosed { stream }),
    };
    watcher.abort();
    // Whatever error the cancelled work ended with, it was the signal.
    if result.is_err()
        && let Some(signal) = crate::cancel::requested()
    {
        return Err(interrupted(signal).await);
    }
    let removed = engine::cleanup_live_containers().await;
    if removed > 0 {
        tracing::warn!(removed, "removed hermetic's containers left at exit");
    }
    result
}

/// Prints `value` as pretty JSON on stdout. JSON escapes control
/// characters itself, so names are written exactly, not through
/// [`crate::term::shown`].
fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    crate::term::write_stdout(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::unix::net::UnixListener;
    use std::sync::{Arc, Mutex};

    /// Just enough of the Docker API on a Unix socket for a container to be
    /// created, started and removed; records each request line.
    fn fake_docker(socket: &std::path::Path) -> Arc<Mutex<Vec<String>>> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let listener = UnixListener::bind(socket).unwrap();
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let log = log.clone();
                std::thread::spawn(move || serve(conn, &log));
            }
        });
        seen
    }

    fn serve(conn: std::os::unix::net::UnixStream, log: &Mutex<Vec<String>>) {
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut conn = conn;
        loop {
            let mut request = String::new();
            if reader.read_line(&mut request).unwrap_or(0) == 0 {
                return;
            }
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let request = request.trim().to_string();
            log.lock().unwrap().push(request.clone());
            let (status, body) = if request.contains("/_ping") {
                ("200 OK", "OK".to_string())
            } else if request.contains("/version") {
                (
                    "200 OK",
                    r#"{"Version":"99.0","ApiVersion":"1.47","MinAPIVersion":"1.24"}"#.into(),
                )
            } else if request.contains("/containers/create") {
                ("201 Created", r#"{"Id":"c0ffee","Warnings":[]}"#.into())
            } else {
                ("204 No Content", String::new())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if conn.write_all(response.as_bytes()).is_err() {
                return;
            }
        }
    }

    /// A panic in the middle of a command still removes the container it
    /// made: the run guard catches the unwind and sweeps the registry.
    #[tokio::test]
    async fn a_panic_still_removes_the_containers() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let seen = fake_docker(&socket);
        let global = GlobalSettings {
            engine_socket: Some(format!("unix://{}", socket.display())),
            verbose: 0,
        };
        let result = run_guarded(async {
            let engine = connect(&global).await?;
            let _container = engine
                .create_container(&ContainerSpec {
                    image: "sha256:00".into(),
                    build_id: "panic-test".into(),
                    role: "build".into(),
                    network: Network::None,
                    hardened: true,
                    env: vec![],
                    user: None,
                })
                .await?;
            panic!("a bug in the middle of a build");
        })
        .await;
        assert!(matches!(result, Err(Error::Panicked)), "{result:?}");
        let seen = seen.lock().unwrap();
        assert!(
            seen.iter()
                .any(|r| r.starts_with("DELETE") && r.contains("/containers/c0ffee")),
            "the container was not removed: {seen:?}"
        );
    }
}

//! Build phase (network off): the offline container where the bundle is
//! assembled. Runs as the builder's unprivileged user with every capability
//! dropped and `no-new-privileges`; inputs arrive as tar, the bundle leaves
//! as tar.
//!
//! Steps: copy the runtime out of the builder's CPython prefix, pip-install
//! the hash-pinned requirements from the fetched files only (`--no-index`),
//! install the local project, run the recipe's build commands and collect
//! their files, strip debug info (which records build directories) from the
//! runtime and from anything compiled here.

use std::path::Path;

use tracing::instrument;

use super::fetch::{no_binary_arg, pip_env};
use super::{BuildContext, BuildError, step_failed};
use crate::engine::{Container, ContainerSpec, ExecSpec, Network};
use crate::plan::TargetPlan;
use crate::recipe::Compiler;

/// Where the build container keeps things.
pub const INPUTS_DIR: &str = "/hermetic/inputs";
/// The build context (the recipe's directory), copied in.
pub const SRC_DIR: &str = "/hermetic/src";
/// Where the build commands run.
pub const WORK_DIR: &str = "/hermetic/work";
/// Where the bundle is assembled.
pub const OUT_DIR: &str = "/hermetic/out";
/// Build requirements (backends) live here, outside the bundle.
pub const BUILD_ENV: &str = "/tmp/hermetic-build-env";
/// The unprivileged user of local builders (see Dockerfiles/builder-debian.Dockerfile).
pub const BUILD_USER: &str = "1000:1000";

/// The bundle's assembly directory in the container.
pub fn bundle_dir(name: &str) -> String {
    format!("{OUT_DIR}/{name}")
}

/// Creates the offline build container.
pub async fn create(ctx: &BuildContext<'_>, image_id: &str) -> Result<Container, BuildError> {
    let spec = ContainerSpec {
        image: image_id.to_string(),
        build_id: ctx.build_id.clone(),
        role: "build".into(),
        network: Network::None,
        hardened: true,
        env: build_env(ctx),
        user: Some(BUILD_USER.into()),
    };
    Ok(ctx.engine.create_container(&spec).await?)
}

fn build_env(ctx: &BuildContext<'_>) -> Vec<String> {
    let mut env = pip_env();
    env.extend([
        format!("SOURCE_DATE_EPOCH={}", ctx.plan.source_date_epoch),
        "HOME=/tmp/home".to_string(),
        "LC_ALL=C.UTF-8".to_string(),
        "TZ=UTC".to_string(),
        // Keep build directories out of compiled files.
        format!("CFLAGS=-ffile-prefix-map={WORK_DIR}=. -ffile-prefix-map=/tmp=."),
    ]);
    env.extend(
        compiler_env(ctx.plan.compiler)
            .iter()
            .map(|v| v.to_string()),
    );
    env
}

/// The compiler environment of `[build].compiler`. Nothing for the
/// builder's own (its image's `CC`/`CXX`, and the `CC` its Python's
/// sysconfig records); the distro's gcc/g++ otherwise, for build commands
/// and for setuptools, which takes `CC`, `CXX` and `LDSHARED` from the
/// environment over sysconfig.
fn compiler_env(compiler: Compiler) -> &'static [&'static str] {
    match compiler {
        Compiler::Builder => &[],
        Compiler::Distro => &[
            "CC=gcc",
            "CXX=g++",
            "LDSHARED=gcc -pthread -shared",
            "LDCXXSHARED=g++ -pthread -shared",
        ],
    }
}

/// Runs every assembly step; the bundle ends up in [`bundle_dir`].
#[instrument(skip_all, fields(glibc = %target.glibc))]
pub async fn assemble(
    ctx: &BuildContext<'_>,
    container: &Container,
    target: &TargetPlan,
    inputs_dir: &Path,
    context_dir: &Path,
    python_prefix: &str,
) -> Result<(), BuildError> {
    let b = bundle_dir(&ctx.plan.name);
    let rt = format!("{b}/{}", crate::bundle::RUNTIME_DIR);
    let py = format!("{rt}/bin/{}", ctx.python_exe);

    // Builders that are not hermetic's own (manylinux) have no /hermetic
    // and no build user: make the work root as root, writable by the
    // unprivileged user every later step runs as (root without capabilities
    // can create and chmod what it owns, nothing else).
    let prepare = ExecSpec::shell(
        "set -e; [ -d /hermetic ] || mkdir /hermetic; \
         if [ \"$(stat -c %u /hermetic)\" = 0 ]; then chmod 1777 /hermetic; fi",
    )
    .user("0:0");
    let out = container.exec(&prepare).await?;
    if out.exit_code != 0 {
        return Err(step_failed(
            "prepare /hermetic as root",
            &out,
            container.log_path(),
        ));
    }
    container.copy_dir_in(inputs_dir, INPUTS_DIR).await?;
    container.copy_dir_in(context_dir, SRC_DIR).await?;
    run(container, "prepare work directories", &format!(
        "set -e; mkdir -p /tmp/home {OUT_DIR}; cp -R {SRC_DIR} {WORK_DIR}; chmod -R u+w {WORK_DIR}"
    ))
    .await?;

    run(container, "copy the Python runtime", &format!(
        "set -e; test -x {prefix}/bin/{exe} || {{ echo 'the builder has no {exe} under {prefix}' >&2; exit 3; }}; \
         mkdir -p {b}/python {b}/bin {b}/lib; cp -a {prefix} {rt}; \
         if [ -L {rt} ] || [ ! -x {rt}/bin/{exe} ]; then echo 'copying {prefix} gave no runtime at {rt}' >&2; exit 3; fi",
        prefix = crate::shell::quote(python_prefix),
        exe = ctx.python_exe,
    ))
    .await?;

    // Build backends (setuptools, Cython, …) come from the hash-pinned
    // build requirements, installed beside the runtime, never into it; pip
    // then builds with --no-build-isolation and finds them on PYTHONPATH.
    let mut pip_env = String::new();
    let mut isolation = "";
    if let Some(req) = &target.install.build_requirements {
        run(
            container,
            "install build requirements (offline, outside the bundle)",
            &format!(
                "set -e; cd {WORK_DIR}; {py} -m pip install --no-index --find-links {INPUTS_DIR} --no-compile \
                 --progress-bar off --require-hashes --target {BUILD_ENV} -r {}",
                crate::shell::quote(req)
            ),
        )
        .await?;
        pip_env = format!("PYTHONPATH={BUILD_ENV} ");
        isolation = "--no-build-isolation";
    }
    let pip = format!(
        "{pip_env}{py} -m pip install --no-index --find-links {INPUTS_DIR} --no-compile --no-warn-script-location \
         --progress-bar off {isolation} {}",
        no_binary_arg(&target.install.no_binary)
    );
    if let Some(req) = &target.install.requirements {
        let script = format!(
            "set -e; cd {WORK_DIR}; {pip} --require-hashes -r {}",
            crate::shell::quote(req)
        );
        run(container, "install pinned requirements (offline)", &script).await?;
    }
    if let Some(project) = &target.install.project {
        let script = format!(
            "set -e; cd {WORK_DIR}; {pip} --no-deps {}",
            crate::shell::quote(&format!("./{}", project.trim_start_matches("./")))
        );
        run(container, "install the local project (offline)", &script).await?;
    }
    for (i, command) in target.commands.iter().enumerate() {
        let script = format!(
            "set -e; cd {WORK_DIR}; export HERMETIC_BUNDLE={b} HERMETIC_PYTHON={py} HERMETIC_PYTHON_HOME={rt} \
             HERMETIC_PYTHON_VERSION={ver}; {command}",
            ver = ctx.python_version,
        );
        run(container, &format!("build command {}", i + 1), &script).await?;
    }
    for c in &target.collect {
        run(
            container,
            &format!("collect {}", c.from),
            &format!(
                "set -e; mkdir -p \"$(dirname {dest})\"; cp -a {src} {dest}",
                src = crate::shell::quote(&format!("{WORK_DIR}/{}", c.from)),
                dest = crate::shell::quote(&format!("{b}/{}", c.to)),
            ),
        )
        .await?;
    }
    // Debug info records build directories: strip it from the runtime and
    // from whatever was compiled here. Wheels' own libraries are left as
    // they came unless they mention a build directory.
    run(
        container,
        "strip debug info",
        &format!(
            "set -e; cd {b}; find . -type f \\( -name '*.so*' -o -perm -u+x \\) -print | while IFS= read -r f; do \
           [ \"$(head -c 4 \"$f\" | od -An -c | tr -d ' \\n')\" = '177ELF' ] || continue; \
           case $f in ./python/runtime/lib/python3*/site-packages/*) \
             grep -q -F -e /hermetic/ -e /tmp/pip- \"$f\" || continue ;; esac; \
           chmod u+w \"$f\"; strip --strip-debug \"$f\"; done"
        ),
    )
    .await?;
    Ok(())
}

/// Runs one shell step and turns a non-zero exit into an error with the
/// step's name, its last output lines and the log file.
pub async fn run(container: &Container, step: &str, script: &str) -> Result<String, BuildError> {
    tracing::info!(step, "running");
    let out = container.exec(&ExecSpec::shell(script)).await?;
    if out.exit_code != 0 {
        return Err(step_failed(step, &out, container.log_path()));
    }
    Ok(out.stdout)
}

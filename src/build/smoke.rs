//! Smoke test: the finished archive is unpacked at a random path (with a
//! space in it, to catch quoting bugs) inside a clean container of a newer
//! distro with no Python, and the recipe's smoke command runs there as an
//! unprivileged user with no network.

use std::path::Path;

use serde::Serialize;

use super::{BuildContext, BuildError};
use crate::builder;
use crate::catalog::Catalog;
use crate::elf::policy::Policy;
use crate::engine::Container;
use crate::engine::{ContainerSpec, ExecSpec, Network};
use crate::plan::SmokePlan;

/// What the smoke test saw.
#[derive(Debug, Clone, Serialize)]
pub struct SmokeReport {
    /// ELF files whose libraries resolved (by the newer distro's loader)
    /// only inside the bundle or to libraries the policy allows.
    pub linkage_checked: usize,
    /// Libraries that resolved elsewhere or not at all: `file: soname => where`.
    pub linkage_problems: Vec<String>,
    /// Image ID of the runtime image the test ran in.
    pub image: String,
    /// Its Debian suite.
    pub suite: String,
    /// Where the bundle was unpacked in the container.
    pub path: String,
    /// The command run, as argv.
    pub command: Vec<String>,
    /// Its exit code.
    pub exit_code: i64,
    /// Whether it exited 0, printed what was expected, and every library resolved.
    pub passed: bool,
    /// The last lines of its output.
    pub stdout_tail: Vec<String>,
    /// The smoke container's log: everything the command printed, and
    /// what arrived in the container.
    pub log: String,
    /// Where a failed smoke test's evidence was kept ([`keep_evidence`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

/// How many failed smoke tests' evidence directories are kept under
/// `$HERMETIC_HOME/failed` (each holds an unpacked bundle).
pub const EVIDENCE_KEPT: usize = 5;

/// Prefix of an evidence directory's name under `$HERMETIC_HOME/failed`.
pub const EVIDENCE_PREFIX: &str = "smoke-failed-";

/// Keeps what a failed smoke test leaves to look at, in
/// `$HERMETIC_HOME/failed/<build id>/`: the bundle unpacked from the very
/// archive the smoke test ran (`bundle/`), the smoke container's log
/// (`smoke.log`) and a summary (`smoke.txt`: the command, its exit code,
/// the expected output, the linkage problems, the output's tail). Not in
/// `--out`, and named so that it never looks like a release. Only the
/// newest [`EVIDENCE_KEPT`] are kept. Returns the directory.
pub fn keep_evidence(
    build_id: &str,
    archive: &Path,
    report: &SmokeReport,
    expect: Option<&str>,
) -> Result<std::path::PathBuf, BuildError> {
    let failed = crate::paths::home().join("failed");
    fs_err::create_dir_all(&failed)?;
    // Room for this one among the newest EVIDENCE_KEPT.
    let _ = crate::paths::prune_oldest(
        &failed,
        EVIDENCE_KEPT.saturating_sub(1),
        u64::MAX,
        |e, meta| meta.is_dir() && e.file_name().to_string_lossy().starts_with(EVIDENCE_PREFIX),
    );
    let dir = failed.join(format!("{EVIDENCE_PREFIX}{build_id}"));
    let bundle = dir.join("bundle");
    fs_err::create_dir_all(&bundle)?;
    crate::archive::unpack_archive(archive, &bundle, crate::archive::unpack_limit()?)?;
    let _ = fs_err::copy(&report.log, dir.join("smoke.log"));
    let mut summary = format!(
        "the smoke test of {} failed on {} ({})\ncommand: {}\nexit code: {}\n",
        archive.display(),
        report.suite,
        report.image,
        crate::shell::join(&report.command),
        report.exit_code,
    );
    if let Some(expect) = expect {
        summary.push_str(&format!("expected in its output: {expect:?}\n"));
    }
    for problem in &report.linkage_problems {
        summary.push_str(&format!("linkage: {problem}\n"));
    }
    summary.push_str("output (last lines; all of it is in smoke.log):\n");
    for line in &report.stdout_tail {
        summary.push_str(&format!("| {line}\n"));
    }
    fs_err::write(dir.join("smoke.txt"), summary)?;
    Ok(dir)
}

/// Removes every failed smoke test's evidence under `home` (`hermetic gc
/// --all`); returns the directories removed.
pub fn gc_evidence(home: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let failed = home.join("failed");
    let entries = match fs_err::read_dir(&failed) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry?;
        let is_evidence = entry
            .file_name()
            .to_string_lossy()
            .starts_with(EVIDENCE_PREFIX);
        if is_evidence && entry.file_type()?.is_dir() {
            fs_err::remove_dir_all(entry.path())?;
            removed.push(entry.path());
        }
    }
    removed.sort();
    Ok(removed)
}

/// Runs the smoke command against `archive`.
pub async fn run(
    ctx: &BuildContext<'_>,
    archive: &Path,
    smoke: &SmokePlan,
    suite: &str,
    elf_files: &[String],
    policy: &Policy,
) -> Result<SmokeReport, BuildError> {
    let catalog = Catalog::active()?;
    catalog.runtime(suite)?;
    let base = builder::runtime_base(ctx.engine, suite).await?;
    let spec = ContainerSpec {
        image: base.image_id.clone(),
        build_id: ctx.build_id.clone(),
        role: "smoke".into(),
        network: Network::None,
        hardened: true,
        env: vec!["LANG=C.UTF-8".into()],
        user: Some("0:0".into()),
    };
    let random: String = {
        use sha2::Digest;
        let seed = format!("{}-{:?}", ctx.build_id, std::time::SystemTime::now());
        hex::encode(sha2::Sha256::digest(seed.as_bytes()))[..10].to_string()
    };
    let dir = format!("/tmp/smoke {random}/moved here");
    let container = ctx.engine.create_container(&spec).await?;
    let result = async {
        container.mkdir(&dir).await?;
        container.upload_tar_file(archive, &dir).await?;
        let mut cmd = smoke.command.clone();
        if let Some(first) = cmd.first_mut() {
            *first = format!("{dir}/{}/{}", ctx.plan.name, first.trim_start_matches("./"));
        }
        // Logged for post-mortems: what arrived, and how its libraries resolve.
        container.exec(&ExecSpec::shell(format!("cd '{dir}' && find . -maxdepth 3 | sort | head -200"))).await?;
        let problems = check_linkage(&container, &format!("{dir}/{}", ctx.plan.name), elf_files, policy).await?;
        let python_absent = container
            .exec(&ExecSpec::shell("command -v python3 python || ls /usr/bin/python* 2>/dev/null"))
            .await?;
        if python_absent.exit_code == 0 && !python_absent.stdout.trim().is_empty() {
            tracing::warn!(suite, found = %python_absent.stdout.trim(), "smoke image has a Python; the test proves less");
        }
        let out = container
            .exec(&ExecSpec { cmd: cmd.clone(), user: Some("65534:65534".into()), workdir: Some("/".into()), env: vec![] })
            .await?;
        let expected = smoke.expect.as_deref().is_none_or(|e| out.stdout.contains(e));
        Ok(SmokeReport {
            linkage_checked: elf_files.len(),
            passed: out.exit_code == 0 && expected && problems.is_empty(),
            linkage_problems: problems,
            image: base.image_id.clone(),
            suite: suite.to_string(),
            path: dir.clone(),
            command: cmd,
            exit_code: out.exit_code,
            stdout_tail: out.tail,
            log: container.log_path().display().to_string(),
            evidence: None,
        })
    }
    .await;
    container.remove().await;
    result
}

/// Asks the newer distro's own loader (`ld.so --list`) where every ELF file
/// of the bundle finds its libraries: each must resolve inside the bundle or
/// be one the policy lets the host provide.
async fn check_linkage(
    container: &Container,
    top: &str,
    elf_files: &[String],
    policy: &Policy,
) -> Result<Vec<String>, BuildError> {
    if elf_files.is_empty() {
        return Ok(vec![]);
    }
    let quoted = crate::shell::join(elf_files.iter().map(|f| format!("./{f}")));
    // The loader's name differs between distros; ask the shell to find it.
    let script = format!(
        "cd {top} || exit 3; ld=$(ls /lib64/ld-linux-x86-64.so.2 /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 2>/dev/null | head -1); \
         for f in {files}; do echo \"== $f\"; \"$ld\" --list \"$f\" 2>&1; done",
        top = crate::shell::quote(top),
        files = quoted
    );
    let out = container
        .exec(&ExecSpec {
            user: Some("65534:65534".into()),
            ..ExecSpec::shell(script)
        })
        .await?;
    Ok(linkage_problems(&out.stdout, top, policy))
}

/// Parses `ld.so --list` output grouped under `== file` lines.
fn linkage_problems(output: &str, top: &str, policy: &Policy) -> Vec<String> {
    let mut problems = Vec::new();
    let mut file = "";
    for line in output.lines() {
        if let Some(f) = line.strip_prefix("== ") {
            file = f.trim_start_matches("./");
            continue;
        }
        let line = line.trim();
        let Some((soname, rest)) = line.split_once(" => ") else {
            // vdso and the loader itself print no arrow; "not a dynamic
            // executable" for static files is fine too.
            continue;
        };
        let location = rest.split(" (0x").next().unwrap_or(rest).trim();
        let inside = location.starts_with(&format!("{top}/"));
        if location == "not found" {
            problems.push(format!("{file}: {soname} => not found"));
        } else if !inside && !policy.allows_library(soname.rsplit('/').next().unwrap_or(soname)) {
            problems.push(format!(
                "{file}: {soname} => {location} (outside the bundle, not allowed by {})",
                policy.name
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gc_removes_only_evidence_directories() {
        let home = tempfile::tempdir().unwrap();
        let failed = home.path().join("failed");
        fs_err::create_dir_all(failed.join("smoke-failed-a/bundle")).unwrap();
        fs_err::create_dir_all(failed.join("smoke-failed-b")).unwrap();
        fs_err::create_dir_all(failed.join("mine")).unwrap();
        fs_err::write(failed.join("smoke-failed-note"), "a file").unwrap();
        let removed = gc_evidence(home.path()).unwrap();
        assert_eq!(
            removed,
            [failed.join("smoke-failed-a"), failed.join("smoke-failed-b")]
        );
        assert!(failed.join("mine").is_dir());
        assert!(failed.join("smoke-failed-note").is_file());
        assert!(
            gc_evidence(&home.path().join("nothing"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn linkage_output_is_judged() {
        let policy = Policy::for_name("2.31").unwrap();
        let out = "== ./python/runtime/lib/python3.11/lib-dynload/_ssl.so
\tlinux-vdso.so.1 (0x00007ffc)
\tlibssl-f39abf7f.so.1.1 => /tmp/x y/app/lib/libssl-f39abf7f.so.1.1 (0x00007f)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)
\tlibffi.so.8 => /lib/x86_64-linux-gnu/libffi.so.8 (0x00007f)
\tlibgone.so.1 => not found
\t/lib64/ld-linux-x86-64.so.2 (0x00007f)
== ./bin/prog
\t/lib64/ld-linux-x86-64.so.2 => /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 (0x00007f)
";
        let p = linkage_problems(out, "/tmp/x y/app", policy);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("libffi.so.8") && p[0].contains("outside the bundle"));
        assert!(p[1].contains("libgone.so.1 => not found"));
    }
}

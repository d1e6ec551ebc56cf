//! Repair inside the builder: the ELF facts come from a copy of the
//! assembled bundle on the host (goblin, `elf::`), libraries are resolved the
//! way the builder's loader would (RPATH/RUNPATH, `ld.so.cache` from
//! `ldconfig -p`, default directories) by reading them out of the container,
//! and the resulting plan runs in the container as one shell script of
//! copies and one `patchelf` call per file. Each vendored library's owning
//! OS package is looked up (`dpkg -S` / `rpm -qf`) for the SBOM.

use std::collections::HashMap;
use std::path::Path;

use tokio::runtime::Handle;

use super::assemble::{bundle_dir, run};
use super::{BuildContext, BuildError};
use crate::bundle::{OsPackage, VendoredLib};
use crate::elf::repair::{LibraryResolver, ResolvedLib};
use crate::elf::search::SearchPath;
use crate::elf::{ElfError, policy::Policy, tree::Tree};
use crate::engine::{Container, EngineError};
use crate::glibc::Glibc;

/// The loader's default directories on the builders hermetic knows.
const DEFAULT_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];
/// Largest library hermetic will vendor.
const MAX_LIB_BYTES: u64 = 512 << 20;

/// Resolves libraries by reading them out of a running builder container.
struct ContainerResolver<'a> {
    container: &'a Container,
    handle: Handle,
    /// `ld.so.cache`: soname -> path (x86-64 entries only).
    ld_cache: HashMap<String, String>,
}

impl LibraryResolver for ContainerResolver<'_> {
    fn resolve(
        &mut self,
        soname: &str,
        search: &SearchPath,
    ) -> Result<Option<ResolvedLib>, ElfError> {
        let mut candidates: Vec<String> = search
            .dirs()
            .map(|d| format!("{}/{soname}", d.trim_end_matches('/')))
            .collect();
        if let Some(p) = self.ld_cache.get(soname) {
            candidates.push(p.clone());
        }
        candidates.extend(DEFAULT_DIRS.iter().map(|d| format!("{d}/{soname}")));
        for path in candidates {
            if !path.starts_with('/') {
                continue;
            }
            let read = tokio::task::block_in_place(|| {
                self.handle
                    .block_on(self.container.read_file(&path, MAX_LIB_BYTES))
            });
            match read {
                Ok(bytes) => {
                    return Ok(Some(ResolvedLib {
                        path_in_builder: path,
                        bytes,
                    }));
                }
                Err(EngineError::PathNotFound { .. }) => continue,
                Err(e) => {
                    return Err(ElfError::Resolve {
                        soname: soname.to_string(),
                        needed_by: search.requested_by.clone(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        Ok(None)
    }
}

/// Parses `ldconfig -p`: `\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1`.
fn parse_ld_cache(text: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for line in text.lines().skip(1) {
        let Some((left, path)) = line.split_once(" => ") else {
            continue;
        };
        let left = left.trim();
        let Some((soname, flags)) = left.split_once(' ') else {
            continue;
        };
        if flags.contains("x86-64") {
            map.entry(soname.to_string())
                .or_insert_with(|| path.trim().to_string());
        }
    }
    map
}

/// Vendors every non-policy library of the bundle assembled in `container`
/// and fixes RPATHs; returns what was vendored. `work` is a host scratch dir.
pub async fn repair(
    ctx: &BuildContext<'_>,
    container: &Container,
    glibc: Glibc,
    work: &Path,
) -> Result<Vec<VendoredLib>, BuildError> {
    let bundle = bundle_dir(&ctx.plan.name);
    let tar = work.join("pre-repair.tar");
    container.copy_out(&bundle, &tar).await?;
    let tree_dir = work.join("pre-repair");
    fs_err::create_dir_all(&tree_dir)?;
    let limit = crate::archive::unpack_limit()?;
    crate::archive::unpack_safe(fs_err::File::open(&tar)?, &tree_dir, limit)?;
    let top = tree_dir.join(&ctx.plan.name);
    let tree = Tree::scan(&top)?;
    let policy = Policy::for_glibc(glibc)?;

    let ld_cache = parse_ld_cache(&run(container, "read ld.so.cache", "ldconfig -p").await?);
    let mut resolver = ContainerResolver {
        container,
        handle: Handle::current(),
        ld_cache,
    };
    let plan =
        crate::elf::repair::plan_repair(&tree, policy, crate::bundle::LIB_DIR, &mut resolver)?;
    plan.ensure_complete()?;
    fs_err::remove_dir_all(&tree_dir)?;
    fs_err::remove_file(&tar)?;
    if plan.is_empty() {
        return Ok(vec![]);
    }
    let script = plan.to_shell_script(&bundle);
    run(container, "vendor libraries and fix RPATHs", &script).await?;

    let owners = owners(container, plan.vendored.iter().map(|v| v.source.as_str())).await?;
    let mut vendored = Vec::new();
    // One sha256sum over every vendored file (after patchelf changed them).
    let files = crate::shell::join(plan.vendored.iter().map(|v| v.dest.as_str()));
    let sums = run(
        container,
        "hash vendored libraries",
        &format!(
            "cd {} && sha256sum -- {}",
            crate::shell::quote(&bundle),
            files
        ),
    )
    .await?;
    let hash_of: HashMap<&str, &str> = sums
        .lines()
        .filter_map(|l| l.split_once("  ").map(|(hash, file)| (file, hash)))
        .collect();
    for v in &plan.vendored {
        vendored.push(VendoredLib {
            path: v.dest.clone(),
            original_soname: v.soname.clone(),
            source_path: v.source.clone(),
            sha256: hash_of
                .get(v.dest.as_str())
                .map(|h| h.to_string())
                .unwrap_or_default(),
            package: owners.get(&v.source).cloned(),
        });
    }
    vendored.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(vendored)
}

/// The OS package owning each path: one `dpkg -S` over every spelling of
/// every path (with merged /usr a library found under /lib may be
/// registered under /usr/lib and the other way round), then one
/// `dpkg-query` for the versions; `rpm -qf` on RPM-based builders.
async fn owners<'p>(
    container: &Container,
    paths: impl Iterator<Item = &'p str>,
) -> Result<HashMap<String, OsPackage>, BuildError> {
    let paths: Vec<&str> = paths.collect();
    let mut map = HashMap::new();
    if paths.is_empty() {
        return Ok(map);
    }
    let quoted = crate::shell::join(paths);
    let script = format!(
        "if command -v dpkg-query >/dev/null; then \
           for p in {paths}; do r=$(readlink -f \"$p\"); \
             for q in \"$p\" \"$r\" \"${{p#/usr}}\" \"/usr$p\" \"${{r#/usr}}\" \"/usr$r\"; do printf '%s\\t%s\\n' \"$p\" \"$q\"; done; \
           done > /tmp/hermetic-owner-paths; \
           cut -f2 /tmp/hermetic-owner-paths | sort -u | xargs dpkg -S 2>/dev/null | sed 's/^/S\\t/'; \
           cat /tmp/hermetic-owner-paths | sed 's/^/P\\t/'; \
           dpkg-query -W -f='Q\\t${{Package}}\\t${{Version}}\\t${{Architecture}}\\n'; \
         else for p in {paths}; do \
           printf 'R\\t%s\\t%s\\n' \"$p\" \"$(rpm -qf --qf '%{{NAME}}\\t%{{VERSION}}-%{{RELEASE}}\\t%{{ARCH}}' \"$p\" 2>/dev/null)\"; done; fi",
        paths = quoted
    );
    let out = container
        .exec(&crate::engine::ExecSpec::shell(script))
        .await?;
    // dpkg -S exits 1 when some spelling is unknown: that is expected.
    let mut owner_of_spelling: HashMap<&str, &str> = HashMap::new();
    let mut spellings: Vec<(&str, &str)> = Vec::new();
    let mut versions: HashMap<&str, (&str, &str)> = HashMap::new();
    for line in out.stdout.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["S", rest] => {
                // "pkg[:arch][, pkg2]: /path"
                if let Some((pkgs, path)) = rest.split_once(": ") {
                    let pkg = pkgs
                        .split(',')
                        .next()
                        .unwrap_or(pkgs)
                        .split(':')
                        .next()
                        .unwrap_or(pkgs)
                        .trim();
                    owner_of_spelling.insert(path.trim(), pkg);
                }
            }
            ["P", path, spelling] => spellings.push((path, spelling)),
            ["Q", name, version, arch] => {
                versions.insert(name, (version, arch));
            }
            ["R", path, name, version, arch] if !name.is_empty() => {
                map.insert(
                    path.to_string(),
                    OsPackage {
                        name: name.to_string(),
                        version: version.to_string(),
                        arch: arch.to_string(),
                        kind: "rpm".into(),
                    },
                );
            }
            _ => {}
        }
    }
    for (path, spelling) in spellings {
        if map.contains_key(path) {
            continue;
        }
        if let Some(pkg) = owner_of_spelling.get(spelling)
            && let Some((version, arch)) = versions.get(pkg)
        {
            map.insert(
                path.to_string(),
                OsPackage {
                    name: pkg.to_string(),
                    version: version.to_string(),
                    arch: arch.to_string(),
                    kind: "deb".into(),
                },
            );
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ld_cache_lines_parse() {
        let text = "1234 libs found in cache `/etc/ld.so.cache'\n\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1\n\tlibz.so.1 (libc6) => /lib/i386-linux-gnu/libz.so.1\n\tlibyaml-0.so.2 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libyaml-0.so.2\n";
        let map = parse_ld_cache(text);
        assert_eq!(
            map.get("libz.so.1").unwrap(),
            "/lib/x86_64-linux-gnu/libz.so.1"
        );
        assert_eq!(map.len(), 2);
    }
}

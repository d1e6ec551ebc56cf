//! Repair planning: which libraries a bundle must carry, and which
//! `patchelf` edits make every file find them through `$ORIGIN`.
//!
//! This module does no I/O of its own. It walks the `DT_NEEDED` closure of a
//! scanned bundle [`Tree`]: a needed library the policy lets the host provide
//! is left alone; one that already resolves inside the bundle (including the
//! `*.libs/` directories wheels vendor) is left where it is; one that is in
//! the bundle but off the search path gets a `$ORIGIN` entry pointing at it;
//! anything else is looked up through a [`LibraryResolver`] (the engine layer
//! implements it against the builder container) and vendored into the
//! bundle's library directory under a content-hashed name, so two different
//! copies of one soname never clash. The result is a [`RepairPlan`], pure
//! data, which [`RepairPlan::to_shell_script`] turns into one POSIX sh script
//! that runs inside the builder (where `patchelf` lives).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::ElfError;
use super::policy::Policy;
use super::reader::{ElfFacts, read_elf};
use super::search::{SearchPath, expand_origin, is_origin_relative, origin_relative, parent_dir};
use super::tree::{Resolution, Tree};

/// A library found in the builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedLib {
    /// Absolute path of the library in the builder (what the script copies).
    pub path_in_builder: String,
    /// Its content, to read its own needs and to hash its vendored name.
    pub bytes: Vec<u8>,
}

/// Finds libraries the way the builder's ld.so would: the given RPATH/RUNPATH
/// directories first (in [`SearchPath::dirs`] order), then `ld.so.cache`
/// (`ldconfig -p`) and the default directories.
pub trait LibraryResolver {
    /// `Ok(None)` when no directory of the builder has `soname`.
    fn resolve(
        &mut self,
        soname: &str,
        search: &SearchPath,
    ) -> Result<Option<ResolvedLib>, ElfError>;
}

/// One library copied into the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VendoredLib {
    /// The `DT_NEEDED` name it was found under, e.g. `libssl.so.1.1`.
    pub soname: String,
    /// Where it is in the builder.
    pub source: String,
    /// Where it goes, relative to the bundle root, e.g. `lib/libssl-1a2b3c4d.so.1.1`.
    pub dest: String,
    /// Its new `SONAME` (the file name of `dest`).
    pub new_soname: String,
    /// sha256 of its content (hex), checked after the copy.
    pub sha256: String,
    /// Files (bundle paths, or builder paths of other vendored libraries) that need it.
    pub needed_by: Vec<String>,
}

/// `patchelf --replace-needed old new`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplaceNeeded {
    /// The `DT_NEEDED` name to replace.
    pub old: String,
    /// The name of the vendored copy.
    pub new: String,
}

/// What to do with a file's RPATH/RUNPATH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RpathEdit {
    /// `patchelf --set-rpath VALUE` (patchelf writes it as `DT_RUNPATH`).
    Set {
        /// The new search path.
        value: String,
    },
    /// `patchelf --remove-rpath`: every entry was absolute.
    Remove,
}

/// All edits of one file, applied by a single `patchelf` call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEdit {
    /// Path relative to the bundle root.
    pub path: String,
    /// `DT_NEEDED` names to change to vendored copies.
    pub replace_needed: Vec<ReplaceNeeded>,
    /// A new `DT_SONAME` (for a vendored library).
    pub set_soname: Option<String>,
    /// What to do with the RPATH/RUNPATH, if anything.
    pub rpath: Option<RpathEdit>,
}

/// A library nothing could find.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnresolvedLib {
    /// The `DT_NEEDED` name.
    pub soname: String,
    /// The file that needs it.
    pub needed_by: String,
}

/// Everything repair will do to a bundle (`build --plan --json` shows it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepairPlan {
    /// The policy whose whitelist decided what stays on the host.
    pub policy: String,
    /// The bundle directory vendored libraries go to, e.g. `lib`.
    pub lib_dir: String,
    /// Libraries to copy in, sorted by destination.
    pub vendored: Vec<VendoredLib>,
    /// Per-file edits, sorted by path.
    pub edits: Vec<FileEdit>,
    /// Libraries no search path provides; [`RepairPlan::ensure_complete`] makes them an error.
    pub unresolved: Vec<UnresolvedLib>,
}

/// The destination file name of a vendored copy: the hash goes between the
/// stem and the `.so…` suffix, like auditwheel's, so the name still looks
/// like a library: `libssl.so.1.1` + `1a2b3c4d` -> `libssl-1a2b3c4d.so.1.1`.
pub fn hashed_name(soname: &str, short_hash: &str) -> String {
    match soname.split_once('.') {
        Some((stem, ext)) => format!("{stem}-{short_hash}.{ext}"),
        None => format!("{soname}-{short_hash}"),
    }
}

struct Pending {
    facts: ElfFacts,
    source: String,
}

/// Computes the repair plan of a scanned bundle.
///
/// `lib_dir` is where vendored libraries go, relative to the bundle root
/// (e.g. `lib`).
pub fn plan_repair(
    tree: &Tree,
    policy: &Policy,
    lib_dir: &str,
    resolver: &mut dyn LibraryResolver,
) -> Result<RepairPlan, ElfError> {
    let lib_dir = lib_dir.trim_matches('/').to_owned();
    let mut vendored: BTreeMap<String, VendoredLib> = BTreeMap::new();
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut edits = Vec::new();
    let mut unresolved = Vec::new();

    // Files of the bundle: resolve in the tree first, then the builder.
    for facts in tree.elves.iter().filter(|f| f.is_loadable()) {
        let mut replace = Vec::new();
        let mut extra_dirs = Vec::new();
        for needed in &facts.needed {
            if policy.allows_library(needed) {
                continue;
            }
            match tree.resolve_needed(facts, needed) {
                Resolution::Found(_) => continue,
                Resolution::Missing { elsewhere } if !elsewhere.is_empty() => {
                    // Already in the bundle, just off the search path.
                    extra_dirs.push(origin_relative(
                        parent_dir(&facts.path),
                        parent_dir(&elsewhere[0]),
                    ));
                    continue;
                }
                Resolution::Missing { .. } => {}
            }
            let search = SearchPath {
                requested_by: facts.path.clone(),
                rpath: absolute(&facts.rpath),
                runpath: absolute(&facts.runpath),
            };
            match vendor(
                needed,
                &search,
                &lib_dir,
                resolver,
                &mut vendored,
                &mut queue,
            )? {
                Some(new) => replace.push(ReplaceNeeded {
                    old: needed.clone(),
                    new,
                }),
                None => unresolved.push(UnresolvedLib {
                    soname: needed.clone(),
                    needed_by: facts.path.clone(),
                }),
            }
        }
        if !replace.is_empty() {
            extra_dirs.push(origin_relative(parent_dir(&facts.path), &lib_dir));
        }
        let rpath = rpath_edit(facts, &extra_dirs);
        if !replace.is_empty() || rpath.is_some() {
            edits.push(FileEdit {
                path: facts.path.clone(),
                replace_needed: replace,
                set_soname: None,
                rpath,
            });
        }
    }

    // Vendored libraries: their needs are resolved in the builder, from
    // their builder location, and land next to them in `lib_dir`.
    while let Some(Pending { facts, source }) = queue.pop_front() {
        let origin = parent_dir(&source);
        let expand = |entries: &[String]| -> Vec<String> {
            entries
                .iter()
                .map(|e| expand_origin(e, origin).unwrap_or_else(|| e.clone()))
                .filter(|e| e.starts_with('/'))
                .collect()
        };
        let search = SearchPath {
            requested_by: source.clone(),
            rpath: expand(&facts.rpath),
            runpath: expand(&facts.runpath),
        };
        let mut replace = Vec::new();
        for needed in &facts.needed {
            if policy.allows_library(needed) {
                continue;
            }
            match vendor(
                needed,
                &search,
                &lib_dir,
                resolver,
                &mut vendored,
                &mut queue,
            )? {
                Some(new) => replace.push(ReplaceNeeded {
                    old: needed.clone(),
                    new,
                }),
                None => unresolved.push(UnresolvedLib {
                    soname: needed.clone(),
                    needed_by: source.clone(),
                }),
            }
        }
        let had_paths = !facts.rpath.is_empty() || !facts.runpath.is_empty();
        let rpath = if !replace.is_empty() {
            Some(RpathEdit::Set {
                value: "$ORIGIN".into(),
            })
        } else if had_paths {
            Some(RpathEdit::Remove)
        } else {
            None
        };
        let dest = facts.path.clone();
        let new_soname = dest.rsplit('/').next().unwrap_or(&dest).to_owned();
        edits.push(FileEdit {
            path: dest,
            replace_needed: replace,
            set_soname: Some(new_soname),
            rpath,
        });
    }

    edits.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(RepairPlan {
        policy: policy.name.clone(),
        lib_dir,
        vendored: vendored.into_values().collect(),
        edits,
        unresolved,
    })
}

/// Resolves `needed` in the builder and registers its vendored copy; returns
/// the new soname, or `None` when the builder does not have it.
fn vendor(
    needed: &str,
    search: &SearchPath,
    lib_dir: &str,
    resolver: &mut dyn LibraryResolver,
    vendored: &mut BTreeMap<String, VendoredLib>,
    queue: &mut VecDeque<Pending>,
) -> Result<Option<String>, ElfError> {
    let Some(lib) = resolver.resolve(needed, search)? else {
        return Ok(None);
    };
    let sha256 = hex::encode(Sha256::digest(&lib.bytes));
    let new_soname = hashed_name(needed, &sha256[..8]);
    let dest = if lib_dir.is_empty() {
        new_soname.clone()
    } else {
        format!("{lib_dir}/{new_soname}")
    };
    if let Some(existing) = vendored.get_mut(&dest) {
        if !existing.needed_by.contains(&search.requested_by) {
            existing.needed_by.push(search.requested_by.clone());
        }
        return Ok(Some(new_soname));
    }
    let facts = read_elf(Path::new(&dest), &lib.bytes)?.ok_or_else(|| ElfError::NotElf {
        path: lib.path_in_builder.clone().into(),
        reason: format!("resolved as {needed} for {}", search.requested_by),
    })?;
    queue.push_back(Pending {
        facts,
        source: lib.path_in_builder.clone(),
    });
    vendored.insert(
        dest.clone(),
        VendoredLib {
            soname: needed.to_owned(),
            source: lib.path_in_builder,
            dest,
            new_soname: new_soname.clone(),
            sha256,
            needed_by: vec![search.requested_by.clone()],
        },
    );
    Ok(Some(new_soname))
}

fn absolute(entries: &[String]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e.starts_with('/'))
        .cloned()
        .collect()
}

/// The new RPATH of a bundle file: its `$ORIGIN` entries, in order, plus
/// `extra` ones; everything else dropped. `None` when nothing changes.
fn rpath_edit(facts: &ElfFacts, extra: &[String]) -> Option<RpathEdit> {
    let current = facts.search_entries();
    let mut keep: Vec<String> = current
        .iter()
        .filter(|e| is_origin_relative(e))
        .cloned()
        .collect();
    for e in extra {
        if !keep.contains(e) {
            keep.push(e.clone());
        }
    }
    // ld.so ignores DT_RPATH when DT_RUNPATH exists, so stale RPATH entries
    // next to a RUNPATH are harmless but still dropped by any edit we make.
    let ignored_rpath = !facts.runpath.is_empty() && !facts.rpath.is_empty();
    if keep.as_slice() == current && !ignored_rpath {
        return None;
    }
    if keep.is_empty() {
        return Some(RpathEdit::Remove);
    }
    Some(RpathEdit::Set {
        value: keep.join(":"),
    })
}

/// Shell function applying all edits of one file. patchelf >= 0.15 takes
/// them in one call; older ones (Debian bookworm ships 0.14.3) silently
/// corrupt the result when `--set-soname` or `--set-rpath` share a call with
/// other edits (NixOS/patchelf#193, fixed by #361), so there each edit gets
/// its own call.
const PATCHELF_PRELUDE: &str = r#"hermetic_patchelf() {
  file=$1; shift
  version=$(patchelf --version | sed 's/^patchelf //')
  major=${version%%.*}; rest=${version#*.}; minor=${rest%%.*}
  if [ "$major" -gt 0 ] || [ "$minor" -ge 15 ]; then
    patchelf "$@" "$file"
    return
  fi
  while [ $# -gt 0 ]; do
    case $1 in
      --replace-needed) patchelf "$1" "$2" "$3" "$file"; shift 3 ;;
      --set-soname|--set-rpath) patchelf "$1" "$2" "$file"; shift 2 ;;
      *) patchelf "$1" "$file"; shift ;;
    esac
  done
}
"#;

/// A relative path patchelf will not mistake for an option.
fn sh_path(path: &str) -> String {
    if path.starts_with('-') {
        crate::shell::quote_always(&format!("./{path}"))
    } else {
        crate::shell::quote_always(path)
    }
}

impl RepairPlan {
    /// Errors when a needed library was found nowhere.
    pub fn ensure_complete(&self) -> Result<(), ElfError> {
        if self.unresolved.is_empty() {
            return Ok(());
        }
        let missing: Vec<String> = self
            .unresolved
            .iter()
            .map(|u| format!("{} (needed by {})", u.soname, u.needed_by))
            .collect();
        Err(ElfError::Unresolved {
            missing: crate::term::capped_list("unresolved-libraries", &missing, ", "),
        })
    }

    /// Whether the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.vendored.is_empty() && self.edits.is_empty()
    }

    /// A POSIX sh script that applies the plan inside the builder, with the
    /// bundle at `bundle_root_in_container`: copy each library (and check its
    /// hash), then one `patchelf` call per file with all of its edits (split
    /// per edit only on patchelf < 0.15, see [`PATCHELF_PRELUDE`]).
    pub fn to_shell_script(&self, bundle_root_in_container: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "#!/bin/sh");
        let _ = writeln!(
            s,
            "# hermetic repair for {}: vendor {} librar(y/ies), patch {} file(s)",
            self.policy,
            self.vendored.len(),
            self.edits.len()
        );
        let _ = writeln!(s, "set -eu");
        let _ = writeln!(
            s,
            "cd -- {}",
            crate::shell::quote_always(bundle_root_in_container)
        );
        if !self.vendored.is_empty() && !self.lib_dir.is_empty() {
            let _ = writeln!(s, "mkdir -p -- {}", sh_path(&self.lib_dir));
        }
        for lib in &self.vendored {
            let dest = sh_path(&lib.dest);
            let _ = writeln!(
                s,
                "cp -L -- {} {dest}",
                crate::shell::quote_always(&lib.source)
            );
            let _ = writeln!(s, "chmod u+w -- {dest}");
            let _ = writeln!(
                s,
                "printf '%s  %s\\n' {} {dest} | sha256sum -c --status -",
                crate::shell::quote_always(&lib.sha256)
            );
        }
        if !self.edits.is_empty() {
            s.push_str(PATCHELF_PRELUDE);
        }
        for edit in &self.edits {
            let mut cmd = format!("hermetic_patchelf {}", sh_path(&edit.path));
            if let Some(soname) = &edit.set_soname {
                let _ = write!(cmd, " --set-soname {}", crate::shell::quote_always(soname));
            }
            for r in &edit.replace_needed {
                let _ = write!(
                    cmd,
                    " --replace-needed {} {}",
                    crate::shell::quote_always(&r.old),
                    crate::shell::quote_always(&r.new)
                );
            }
            match &edit.rpath {
                Some(RpathEdit::Set { value }) => {
                    let _ = write!(cmd, " --set-rpath {}", crate::shell::quote_always(value));
                }
                Some(RpathEdit::Remove) => cmd.push_str(" --remove-rpath"),
                None => {}
            }
            let _ = writeln!(s, "{cmd}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::testelf::SharedObject;
    use crate::elf::tree::Entry;
    use std::collections::HashMap;
    use std::path::PathBuf;

    /// A builder with a fixed set of libraries; records every lookup.
    #[derive(Default)]
    struct FakeBuilder {
        libs: HashMap<String, ResolvedLib>,
        lookups: Vec<(String, SearchPath)>,
    }

    impl FakeBuilder {
        fn with(mut self, dir: &str, so: SharedObject, soname: &str) -> Self {
            self.libs.insert(
                soname.into(),
                ResolvedLib {
                    path_in_builder: format!("{dir}/{soname}"),
                    bytes: so.build(),
                },
            );
            self
        }
    }

    impl LibraryResolver for FakeBuilder {
        fn resolve(
            &mut self,
            soname: &str,
            search: &SearchPath,
        ) -> Result<Option<ResolvedLib>, ElfError> {
            self.lookups.push((soname.into(), search.clone()));
            Ok(self.libs.get(soname).cloned())
        }
    }

    fn bundle(files: &[(&str, SharedObject)]) -> Tree {
        let elves = files
            .iter()
            .map(|(p, so)| read_elf(Path::new(p), &so.build()).unwrap().unwrap())
            .collect();
        Tree::from_parts(PathBuf::from("b"), elves, Vec::<(String, Entry)>::new())
    }

    fn policy() -> &'static Policy {
        Policy::for_name("2.31").unwrap()
    }

    const SYS: &str = "/usr/lib/x86_64-linux-gnu";

    fn builder() -> FakeBuilder {
        FakeBuilder::default()
            .with(
                SYS,
                SharedObject::new("libssl.so.1.1").needed(&["libcrypto.so.1.1", "libc.so.6"]),
                "libssl.so.1.1",
            )
            .with(
                SYS,
                SharedObject::new("libcrypto.so.1.1")
                    .needed(&["libc.so.6"])
                    .rpath("/opt/old/lib"),
                "libcrypto.so.1.1",
            )
    }

    #[test]
    fn vendors_the_closure_with_hashed_names_and_origin_paths() {
        let tree = bundle(&[(
            "python/lib/python3.11/lib-dynload/_ssl.so",
            SharedObject::new("_ssl.so")
                .needed(&["libssl.so.1.1", "libc.so.6"])
                .runpath("/usr/local/ssl/lib"),
        )]);
        let mut b = builder();
        let plan = plan_repair(&tree, policy(), "lib", &mut b).unwrap();
        plan.ensure_complete().unwrap();

        let names: Vec<_> = plan.vendored.iter().map(|v| v.soname.as_str()).collect();
        assert_eq!(names, ["libcrypto.so.1.1", "libssl.so.1.1"]);
        let ssl = &plan.vendored[1];
        assert!(ssl.new_soname.starts_with("libssl-") && ssl.new_soname.ends_with(".so.1.1"));
        assert_eq!(ssl.new_soname.len(), "libssl-12345678.so.1.1".len());
        assert_eq!(ssl.dest, format!("lib/{}", ssl.new_soname));
        assert_eq!(ssl.source, format!("{SYS}/libssl.so.1.1"));
        // The absolute RUNPATH of the requester is what the builder searched.
        assert_eq!(b.lookups[0].1.runpath, ["/usr/local/ssl/lib"]);

        let ext = plan
            .edits
            .iter()
            .find(|e| e.path.ends_with("_ssl.so"))
            .unwrap();
        assert_eq!(
            ext.replace_needed,
            [ReplaceNeeded {
                old: "libssl.so.1.1".into(),
                new: ssl.new_soname.clone()
            }]
        );
        assert_eq!(
            ext.rpath,
            Some(RpathEdit::Set {
                value: "$ORIGIN/../../../../lib".into()
            })
        );
        let crypto = &plan.vendored[0];
        let ssl_edit = plan.edits.iter().find(|e| e.path == ssl.dest).unwrap();
        assert_eq!(
            ssl_edit.set_soname.as_deref(),
            Some(ssl.new_soname.as_str())
        );
        assert_eq!(ssl_edit.replace_needed[0].new, crypto.new_soname);
        assert_eq!(
            ssl_edit.rpath,
            Some(RpathEdit::Set {
                value: "$ORIGIN".into()
            })
        );
        // libcrypto's absolute RPATH is dropped.
        let crypto_edit = plan.edits.iter().find(|e| e.path == crypto.dest).unwrap();
        assert_eq!(crypto_edit.rpath, Some(RpathEdit::Remove));
    }

    #[test]
    fn policy_libraries_and_wheel_vendored_libraries_stay() {
        let tree = bundle(&[
            (
                "site-packages/numpy/core/_multiarray.so",
                SharedObject::new("_multiarray.so")
                    .needed(&["libopenblas-abc.so", "libm.so.6", "libc.so.6"])
                    .rpath("$ORIGIN/../../numpy.libs"),
            ),
            (
                "site-packages/numpy.libs/libopenblas-abc.so",
                SharedObject::new("libopenblas-abc.so").needed(&["libc.so.6"]),
            ),
        ]);
        let mut b = builder();
        let plan = plan_repair(&tree, policy(), "lib", &mut b).unwrap();
        assert!(plan.is_empty(), "{plan:#?}");
        assert!(b.lookups.is_empty());
    }

    #[test]
    fn wheel_libs_keep_resolving_when_a_file_also_gets_vendored_libs() {
        let tree = bundle(&[
            (
                "sp/pkg/ext.so",
                SharedObject::new("ext.so")
                    .needed(&["libdep-abc.so", "libssl.so.1.1"])
                    .rpath("$ORIGIN/../pkg.libs:/build/lib"),
            ),
            (
                "sp/pkg.libs/libdep-abc.so",
                SharedObject::new("libdep-abc.so"),
            ),
        ]);
        let plan = plan_repair(&tree, policy(), "lib", &mut builder()).unwrap();
        let ext = plan
            .edits
            .iter()
            .find(|e| e.path == "sp/pkg/ext.so")
            .unwrap();
        assert_eq!(
            ext.rpath,
            Some(RpathEdit::Set {
                value: "$ORIGIN/../pkg.libs:$ORIGIN/../../lib".into()
            })
        );
    }

    #[test]
    fn library_in_the_bundle_but_off_the_path_gets_a_runpath_not_a_copy() {
        let tree = bundle(&[
            (
                "bin/app",
                SharedObject::new("app").needed(&["libpython3.11.so.1.0"]),
            ),
            (
                "python/lib/libpython3.11.so.1.0",
                SharedObject::new("libpython3.11.so.1.0"),
            ),
        ]);
        let mut b = builder();
        let plan = plan_repair(&tree, policy(), "lib", &mut b).unwrap();
        assert!(plan.vendored.is_empty());
        assert_eq!(
            plan.edits[0].rpath,
            Some(RpathEdit::Set {
                value: "$ORIGIN/../python/lib".into()
            })
        );
    }

    #[test]
    fn unresolved_libraries_are_listed_and_make_the_plan_incomplete() {
        let tree = bundle(&[(
            "bin/app",
            SharedObject::new("app").needed(&["libnope.so.9"]),
        )]);
        let plan = plan_repair(&tree, policy(), "lib", &mut builder()).unwrap();
        let err = plan.ensure_complete().unwrap_err().to_string();
        assert!(err.contains("libnope.so.9 (needed by bin/app)"), "{err}");
    }

    #[test]
    fn shell_script_batches_edits_and_quotes_origin() {
        let tree = bundle(&[(
            "bin/it's app",
            SharedObject::new("app").needed(&["libssl.so.1.1"]),
        )]);
        let plan = plan_repair(&tree, policy(), "lib", &mut builder()).unwrap();
        let script = plan.to_shell_script("/opt/bundle");
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains("cd -- '/opt/bundle'\n"));
        assert!(script.contains("'$ORIGIN/../lib'"), "{script}");
        assert!(script.contains(r"'bin/it'\''s app'"), "{script}");
        // One patchelf call per edited file: app, libssl, libcrypto.
        let calls: Vec<_> = script
            .lines()
            .filter(|l| l.starts_with("hermetic_patchelf "))
            .collect();
        assert_eq!(calls.len(), 3, "{script}");
        let ssl = &plan.vendored[1];
        let line = calls
            .iter()
            .find(|l| l.starts_with(&format!("hermetic_patchelf '{}'", ssl.dest)))
            .unwrap();
        assert!(
            line.contains("--set-soname") && line.contains("--replace-needed"),
            "{line}"
        );
        assert!(script.find("cp -L").unwrap() < script.find("hermetic_patchelf '").unwrap());
    }

    #[test]
    fn hashed_names() {
        assert_eq!(
            hashed_name("libssl.so.1.1", "deadbeef"),
            "libssl-deadbeef.so.1.1"
        );
        assert_eq!(hashed_name("libfoo", "deadbeef"), "libfoo-deadbeef");
        assert_eq!(sh_path("-x"), "'./-x'");
    }
}

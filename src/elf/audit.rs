//! Audit = facts x policy: for every loadable ELF file of a tree, what keeps
//! the tree from running on any Linux with the baseline's glibc.
//!
//! Findings come in two kinds. Policy findings (a symbol version too new, a
//! library the host does not promise, a blacklisted symbol) depend on the
//! baseline; they are recomputed for every policy to find the oldest one the
//! tree satisfies. Layout findings (non-`$ORIGIN` RPATH/RUNPATH, a needed
//! library that is in the tree but off the search path, a foreign machine)
//! hold under every baseline.

use std::path::Path;

use serde::Serialize;

use super::ElfError;
use super::policy::Policy;
use super::reader::ElfFacts;
use super::search::is_origin_relative;
use super::tree::{Resolution, Tree};
use crate::glibc::Glibc;

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A symbol version the baseline's host library does not provide.
    SymbolVersionTooNew {
        /// The undefined symbol bound to the version (`None` when the file
        /// needs the version without binding a symbol to it).
        symbol: Option<String>,
        /// The symbol version needed, e.g. `GLIBC_2.34`.
        version: String,
        /// The host library that would have to provide it.
        library: String,
    },
    /// A `DT_NEEDED` library that is neither in the tree nor provided by the host.
    LibraryNotAllowed {
        /// The `DT_NEEDED` name.
        library: String,
    },
    /// A `DT_NEEDED` library that exists in the tree but not where ld.so looks.
    NeededUnresolved {
        /// The `DT_NEEDED` name.
        library: String,
        /// Tree files with that name that the search path misses.
        elsewhere: Vec<String>,
    },
    /// An RPATH/RUNPATH entry that does not start with `$ORIGIN`.
    NonOriginRunpath {
        /// `RPATH` or `RUNPATH`.
        tag: String,
        /// The entry as written.
        entry: String,
    },
    /// A symbol the policy forbids taking from a host library.
    BlacklistedSymbol {
        /// The symbol.
        symbol: String,
        /// The host library it is taken from.
        library: String,
    },
    /// An ELF file for another machine than x86_64.
    ForeignMachine {
        /// The machine the file is built for.
        machine: String,
    },
    /// A file that carries the ELF magic but does not parse, or is named
    /// like a shared library but is not ELF.
    Corrupt {
        /// What is wrong, as one sentence.
        problem: String,
    },
}

impl Finding {
    /// Whether the finding depends on the baseline.
    pub fn is_policy_finding(&self) -> bool {
        matches!(
            self,
            Finding::SymbolVersionTooNew { .. }
                | Finding::LibraryNotAllowed { .. }
                | Finding::BlacklistedSymbol { .. }
        )
    }

    /// One human sentence (without the file name).
    pub fn message(&self, policy: &str) -> String {
        match self {
            Finding::SymbolVersionTooNew {
                symbol,
                version,
                library,
            } => match symbol {
                Some(s) => format!("{s}@{version} from {library} is too new for {policy}"),
                None => format!("needs {version} from {library}, too new for {policy}"),
            },
            Finding::LibraryNotAllowed { library } => {
                format!("needs {library}, which is neither in the tree nor allowed by {policy}")
            }
            Finding::NeededUnresolved { library, elsewhere } => {
                if elsewhere.is_empty() {
                    format!("needs {library}, which does not resolve")
                } else {
                    format!(
                        "needs {library}, which does not resolve from its RPATH/RUNPATH (the tree has it at {})",
                        elsewhere.join(", ")
                    )
                }
            }
            Finding::NonOriginRunpath { tag, entry } => {
                format!("{tag} entry '{entry}' is not $ORIGIN-relative")
            }
            Finding::BlacklistedSymbol { symbol, library } => {
                format!("uses {symbol} from {library}, which {policy} blacklists")
            }
            Finding::ForeignMachine { machine } => {
                format!("is built for {machine}, not x86_64")
            }
            Finding::Corrupt { problem } => problem.clone(),
        }
    }
}

/// Findings for one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    /// Path relative to the tree root.
    pub path: String,
    /// The problems found in the file.
    pub findings: Vec<Finding>,
}

/// The result of auditing a tree against one baseline (`--json` output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// The directory or archive audited.
    pub root: String,
    /// The baseline audited against, e.g. `2.31`.
    pub glibc: Glibc,
    /// Its policy, e.g. `manylinux_2_31`.
    pub policy: String,
    /// Files and links in the tree.
    pub files: usize,
    /// ELF files in the tree.
    pub elf_files: usize,
    /// Files with findings, sorted by path.
    pub reports: Vec<FileReport>,
    /// No findings at all.
    pub compliant: bool,
    /// The oldest glibc baseline with no policy findings (e.g. `2.17`);
    /// `None` when not even the newest policy is met. Layout findings are
    /// baseline-independent and do not move it.
    pub lowest_baseline: Option<Glibc>,
    /// The policy of `lowest_baseline`.
    pub lowest_policy: Option<String>,
}

impl AuditReport {
    /// Human output: one line per finding, then the summary line.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for file in &self.reports {
            for f in &file.findings {
                // Paths and ELF names come from the tree: shown escaped.
                out.push_str(&format!(
                    "{}: {}\n",
                    crate::term::shown(&file.path),
                    crate::term::shown(f.message(&self.policy))
                ));
            }
        }
        let count: usize = self.reports.iter().map(|r| r.findings.len()).sum();
        let verdict = if self.compliant {
            "compliant".to_owned()
        } else {
            format!(
                "NOT compliant, {count} finding(s) in {} file(s)",
                self.reports.len()
            )
        };
        let lowest = match (&self.lowest_baseline, &self.lowest_policy) {
            (Some(g), Some(p)) => format!("glibc {g} ({p})"),
            _ => "none of the known policies".to_owned(),
        };
        out.push_str(&format!(
            "{}: {} ELF files of {} audited against glibc {} ({}): {verdict}; lowest baseline: {lowest}\n",
            crate::term::shown(&self.root),
            self.elf_files,
            self.files,
            self.glibc,
            self.policy
        ));
        out
    }
}

/// Audits a directory, `.tar`, `.tar.gz`/`.tgz` or single file against the
/// baseline `glibc`.
pub fn audit_path(path: &Path, glibc: Glibc) -> Result<AuditReport, ElfError> {
    let policy = Policy::for_glibc(glibc)?;
    let tree = Tree::scan(path)?;
    audit(&tree, policy)
}

/// Audits a directory against `policy`.
pub fn audit_tree(root: &Path, policy: &Policy) -> Result<AuditReport, ElfError> {
    audit(&Tree::scan(root)?, policy)
}

/// Audits an already scanned tree.
pub fn audit(tree: &Tree, policy: &Policy) -> Result<AuditReport, ElfError> {
    // Where each needed library resolves does not depend on the policy:
    // compute it once, then judge it under every policy.
    let loadable: Vec<(&ElfFacts, Vec<Resolution>)> = tree
        .elves
        .iter()
        .filter(|f| f.is_loadable())
        .map(|f| {
            let resolved = f.needed.iter().map(|n| tree.resolve_needed(f, n)).collect();
            (f, resolved)
        })
        .collect();
    let mut reports = Vec::new();
    for (facts, resolved) in &loadable {
        let mut findings = layout_findings(facts, resolved, policy);
        findings.extend(policy_findings(facts, resolved, policy));
        if !findings.is_empty() {
            reports.push(FileReport {
                path: facts.path.clone(),
                findings,
            });
        }
    }
    for (path, problem) in &tree.corrupt {
        reports.push(FileReport {
            path: path.clone(),
            findings: vec![Finding::Corrupt {
                problem: problem.clone(),
            }],
        });
    }
    reports.sort_by(|a, b| a.path.cmp(&b.path));
    let lowest = Policy::lowest_satisfying(|p| {
        loadable
            .iter()
            .all(|(f, resolved)| policy_findings(f, resolved, p).is_empty())
    })?;
    Ok(AuditReport {
        root: tree.root.to_string_lossy().into_owned(),
        glibc: policy.glibc,
        policy: policy.name.clone(),
        files: tree.file_count(),
        elf_files: tree.elves.len(),
        compliant: reports.is_empty(),
        reports,
        lowest_baseline: lowest.map(|p| p.glibc),
        lowest_policy: lowest.map(|p| p.name.clone()),
    })
}

/// Baseline-independent findings (`policy` only excuses host libraries that
/// a file does not find in the tree: ld.so takes the host's copy then).
fn layout_findings(facts: &ElfFacts, resolved: &[Resolution], policy: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    if facts.machine != "x86_64" {
        findings.push(Finding::ForeignMachine {
            machine: facts.machine.clone(),
        });
    }
    for (tag, entries) in [("RPATH", &facts.rpath), ("RUNPATH", &facts.runpath)] {
        for entry in entries.iter().filter(|e| !is_origin_relative(e)) {
            findings.push(Finding::NonOriginRunpath {
                tag: tag.into(),
                entry: entry.clone(),
            });
        }
    }
    for (needed, resolution) in facts.needed.iter().zip(resolved) {
        if policy.allows_library(needed) {
            continue;
        }
        if let Resolution::Missing { elsewhere } = resolution {
            // A library missing from the tree is a policy question (may the
            // host provide it?), answered in `policy_findings`.
            if !elsewhere.is_empty() {
                findings.push(Finding::NeededUnresolved {
                    library: needed.clone(),
                    elsewhere: elsewhere.clone(),
                });
            }
        }
    }
    findings
}

/// Findings that depend on the baseline.
fn policy_findings(facts: &ElfFacts, resolved: &[Resolution], policy: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut from_host = Vec::new();
    for (needed, resolution) in facts.needed.iter().zip(resolved) {
        match resolution {
            // The bundle's own copy wins over the host's.
            Resolution::Found(_) => {}
            Resolution::Missing { elsewhere } => {
                if policy.allows_library(needed) {
                    from_host.push(needed.as_str());
                } else if elsewhere.is_empty() {
                    findings.push(Finding::LibraryNotAllowed {
                        library: needed.clone(),
                    });
                }
            }
        }
    }
    // Versions are only held against libraries the host provides; a
    // library the bundle carries brings its own version definitions.
    for need in facts
        .version_needs
        .iter()
        .filter(|n| from_host.contains(&n.library.as_str()))
    {
        for version in &need.versions {
            if policy.allows_version(&need.library, &version.name) {
                continue;
            }
            if version.symbols.is_empty() {
                findings.push(Finding::SymbolVersionTooNew {
                    symbol: None,
                    version: version.name.clone(),
                    library: need.library.clone(),
                });
            }
            for symbol in &version.symbols {
                findings.push(Finding::SymbolVersionTooNew {
                    symbol: Some(symbol.clone()),
                    version: version.name.clone(),
                    library: need.library.clone(),
                });
            }
        }
    }
    // Unversioned undefined symbols cannot be attributed to one library, so
    // (like auditwheel) a blacklisted name counts against every host library
    // that blacklists it; versioned ones only against their own library.
    for symbol in &facts.undefined_symbols {
        let owner = facts
            .version_needs
            .iter()
            .find(|n| n.versions.iter().any(|v| v.symbols.contains(symbol)))
            .map(|n| n.library.as_str());
        for lib in &from_host {
            if owner.is_none_or(|o| o == *lib) && policy.is_blacklisted(lib, symbol) {
                findings.push(Finding::BlacklistedSymbol {
                    symbol: symbol.clone(),
                    library: (*lib).to_owned(),
                });
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::reader::{ElfClass, ElfKind, SymbolVersionRef, VersionNeed};
    use crate::elf::tree::Entry;
    use std::path::PathBuf;

    fn facts(path: &str, needed: &[&str], runpath: &[&str]) -> ElfFacts {
        ElfFacts {
            path: path.into(),
            class: ElfClass::Elf64,
            machine: "x86_64".into(),
            kind: ElfKind::Dyn,
            interpreter: None,
            needed: needed.iter().map(|s| s.to_string()).collect(),
            soname: None,
            rpath: vec![],
            runpath: runpath.iter().map(|s| s.to_string()).collect(),
            version_needs: vec![],
            undefined_symbols: vec![],
            x86_isa_level: None,
        }
    }

    fn needs_libc(mut f: ElfFacts, version: &str, symbol: &str) -> ElfFacts {
        f.version_needs.push(VersionNeed {
            library: "libc.so.6".into(),
            versions: vec![SymbolVersionRef {
                name: version.into(),
                symbols: vec![symbol.into()],
            }],
        });
        f.undefined_symbols.push(symbol.into());
        f
    }

    fn run(elves: Vec<ElfFacts>, glibc: &str) -> AuditReport {
        let tree = Tree::from_parts(PathBuf::from("t"), elves, Vec::<(String, Entry)>::new());
        audit(&tree, Policy::for_name(glibc).unwrap()).unwrap()
    }

    #[test]
    fn too_new_symbol_version_names_symbol_and_lowest_baseline() {
        let exe = needs_libc(
            facts("bin/app", &["libc.so.6"], &[]),
            "GLIBC_2.34",
            "__libc_start_main",
        );
        let r = run(vec![exe.clone()], "2.31");
        assert!(!r.compliant);
        let text = r.render_text();
        assert!(
            text.contains("bin/app: __libc_start_main@GLIBC_2.34 from libc.so.6"),
            "{text}"
        );
        assert_eq!(
            r.lowest_baseline.map(|g| g.to_string()).as_deref(),
            Some("2.34")
        );
        assert!(run(vec![exe], "2.36").compliant);
    }

    #[test]
    fn libraries_in_tree_on_path_elsewhere_and_missing() {
        let app = facts(
            "bin/app",
            &["libfoo.so.1", "libbar.so.2", "libc.so.6"],
            &["$ORIGIN/../lib"],
        );
        let foo = facts("lib/libfoo.so.1", &[], &[]);
        let bar = facts("other/libbar.so.2", &[], &[]);
        let r = run(vec![app.clone(), foo.clone(), bar], "2.17");
        assert_eq!(
            r.reports[0].findings,
            vec![Finding::NeededUnresolved {
                library: "libbar.so.2".into(),
                elsewhere: vec!["other/libbar.so.2".into()],
            }]
        );
        let r = run(vec![app, foo], "2.17");
        assert_eq!(
            r.reports[0].findings,
            vec![Finding::LibraryNotAllowed {
                library: "libbar.so.2".into()
            }]
        );
        assert_eq!(r.lowest_baseline, None);
    }

    #[test]
    fn same_directory_is_not_searched_implicitly() {
        let ext = facts("pkg/ext.so", &["libdep.so.1"], &[]);
        let dep = facts("pkg/libdep.so.1", &[], &[]);
        let r = run(vec![ext.clone(), dep.clone()], "2.17");
        assert!(matches!(
            r.reports[0].findings[0],
            Finding::NeededUnresolved { .. }
        ));
        let ext = facts("pkg/ext.so", &["libdep.so.1"], &["$ORIGIN"]);
        assert!(run(vec![ext, dep], "2.17").compliant);
    }

    #[test]
    fn absolute_and_relative_runpaths_are_flagged() {
        let mut f = facts("bin/app", &[], &["/usr/local/lib", "$ORIGIN/../lib"]);
        f.rpath = vec!["lib".into()];
        let r = run(vec![f], "2.17");
        let entries: Vec<_> = r.reports[0]
            .findings
            .iter()
            .map(|f| f.message("p"))
            .collect();
        assert_eq!(
            entries,
            [
                "RPATH entry 'lib' is not $ORIGIN-relative",
                "RUNPATH entry '/usr/local/lib' is not $ORIGIN-relative"
            ]
        );
        // Layout findings do not move the baseline.
        assert_eq!(
            r.lowest_baseline.map(|g| g.to_string()).as_deref(),
            Some("2.5")
        );
    }

    #[test]
    fn versions_from_a_vendored_library_are_not_held_against_the_host() {
        let mut f = facts("lib/ext.so", &["libstdc++.so.6"], &["$ORIGIN"]);
        f.version_needs.push(VersionNeed {
            library: "libstdc++.so.6".into(),
            versions: vec![SymbolVersionRef {
                name: "GLIBCXX_3.4.30".into(),
                symbols: vec!["_ZSt4cout".into()],
            }],
        });
        let own = facts("lib/libstdc++.so.6", &[], &[]);
        assert!(run(vec![f.clone(), own], "2.17").compliant);
        assert!(!run(vec![f], "2.17").compliant);
    }

    #[test]
    fn blacklisted_symbols_from_host_libraries() {
        let mut f = facts("lib/ext.so", &["libz.so.1"], &[]);
        f.undefined_symbols = vec!["inflate".into(), "inflate_fast".into()];
        let r = run(vec![f], "2.17");
        assert_eq!(
            r.reports[0].findings,
            vec![Finding::BlacklistedSymbol {
                symbol: "inflate_fast".into(),
                library: "libz.so.1".into()
            }]
        );
    }

    #[test]
    fn report_serializes_with_tagged_findings() {
        let exe = needs_libc(
            facts("bin/app", &["libc.so.6"], &[]),
            "GLIBC_2.34",
            "__libc_start_main",
        );
        let json = serde_json::to_value(run(vec![exe], "2.28")).unwrap();
        assert_eq!(
            json["reports"][0]["findings"][0]["kind"],
            "symbol_version_too_new"
        );
        assert_eq!(json["compliant"], false);
    }
}

//! The manylinux policy table: per baseline, which symbol versions a bundle
//! may need from the host, which libraries the host provides, and which
//! symbols must not be used from them.
//!
//! The table is data, embedded at build time from `manylinux-policy.json`,
//! a verbatim copy of pypa/auditwheel's
//! `src/auditwheel/policy/manylinux-policy.json` (MIT licence). The version
//! lists are *sets*: membership is tested, versions are never compared,
//! because a newer policy is not always a superset (e.g. `GLIBC_PRIVATE` is in
//! none). Only the x86_64 columns are loaded: hermetic builds x86_64 bundles.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde::Deserialize;

use super::ElfError;
use crate::glibc::Glibc;

/// Source: pypa/auditwheel `src/auditwheel/policy/manylinux-policy.json` (MIT).
const POLICY_JSON: &str = include_str!("manylinux-policy.json");

/// The architecture column of the table hermetic uses.
const ARCH: &str = "x86_64";

/// One manylinux policy (one glibc baseline), x86_64 only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Policy name, e.g. `manylinux_2_31`.
    pub name: String,
    /// Legacy names, e.g. `manylinux2014`.
    pub aliases: Vec<String>,
    /// The glibc baseline, e.g. 2.31.
    pub glibc: Glibc,
    /// auditwheel's priority: higher is older (more compatible).
    pub priority: i64,
    /// Allowed versions per namespace (`GLIBC` -> {`2.2.5`, …, `2.31`}).
    pub symbol_versions: BTreeMap<String, BTreeSet<String>>,
    /// Libraries a bundle may take from the host.
    pub lib_whitelist: BTreeSet<String>,
    /// Symbols that must not be used from a whitelisted library.
    pub blacklist: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Deserialize)]
struct RawPolicy {
    name: String,
    aliases: Vec<String>,
    priority: i64,
    symbol_versions: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    lib_whitelist: Vec<String>,
    blacklist: BTreeMap<String, Vec<String>>,
}

/// Which libraries provide the versions of each policed namespace. A version
/// is only held against a policy when it is needed from its own family
/// (as auditwheel does): `GCC_4.2.0` needed from some vendored library is
/// that library's business, not the host's.
fn namespace_serves(namespace: &str, library: &str) -> bool {
    match namespace {
        "GLIBC" => is_glibc_library(library),
        "GLIBCXX" | "CXXABI" => library.starts_with("libstdc++.so"),
        "GCC" => library.starts_with("libgcc_s.so"),
        "LIBATOMIC" => library.starts_with("libatomic.so"),
        "ZLIB" => library.starts_with("libz.so"),
        _ => false,
    }
}

/// Libraries built from glibc's source tree (they all define `GLIBC_*` versions).
fn is_glibc_library(library: &str) -> bool {
    const GLIBC_LIBS: &[&str] = &[
        "libc.so.6",
        "libm.so.6",
        "libmvec.so.1",
        "libpthread.so.0",
        "libdl.so.2",
        "librt.so.1",
        "libanl.so.1",
        "libutil.so.1",
        "libresolv.so.2",
        "libnsl.so.1",
        "libBrokenLocale.so.1",
        "libc_malloc_debug.so.0",
    ];
    GLIBC_LIBS.contains(&library) || is_dynamic_linker(library)
}

/// The dynamic linker is always provided by the host, whatever the policy
/// lists (auditwheel excludes it the same way).
pub fn is_dynamic_linker(library: &str) -> bool {
    library.starts_with("ld-linux") || library == "ld64.so.2" || library == "ld64.so.1"
}

/// Splits a version name into its namespace and version: `GLIBC_2.34` ->
/// (`GLIBC`, `2.34`), `GLIBC_PRIVATE` -> (`GLIBC`, `PRIVATE`).
pub fn split_version(name: &str) -> (&str, &str) {
    name.split_once('_').unwrap_or((name, ""))
}

impl Policy {
    /// All manylinux policies, oldest (most compatible) first. The `linux`
    /// pseudo-policy (no guarantees) is not included.
    pub fn all() -> Result<&'static [Policy], ElfError> {
        static TABLE: OnceLock<Result<Vec<Policy>, String>> = OnceLock::new();
        TABLE
            .get_or_init(|| load(POLICY_JSON))
            .as_deref()
            .map_err(|reason| ElfError::PolicyTable {
                reason: reason.clone(),
            })
    }

    /// The policy for a glibc baseline.
    pub fn for_glibc(glibc: Glibc) -> Result<&'static Policy, ElfError> {
        Self::for_name(&glibc.to_string())
    }

    /// The policy named `2.31`, `manylinux_2_31` or a legacy alias such as
    /// `manylinux2014`.
    pub fn for_name(name: &str) -> Result<&'static Policy, ElfError> {
        let all = Self::all()?;
        let wanted = name.trim();
        all.iter()
            .find(|p| {
                p.glibc_string() == wanted
                    || p.name == wanted
                    || p.aliases.iter().any(|a| a == wanted)
            })
            .ok_or_else(|| ElfError::UnknownBaseline {
                glibc: name.to_owned(),
                known: all
                    .iter()
                    .map(Policy::glibc_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The baseline as the CLI spells it, e.g. `2.31`.
    pub fn glibc_string(&self) -> String {
        self.glibc.to_string()
    }

    /// Whether the host may provide `library` under this policy.
    pub fn allows_library(&self, library: &str) -> bool {
        is_dynamic_linker(library) || self.lib_whitelist.contains(library)
    }

    /// Whether needing `version` (e.g. `GLIBC_2.34`) from `library` is
    /// allowed. Versions of namespaces the policy does not police, or needed
    /// from a library outside the namespace's family, are allowed.
    pub fn allows_version(&self, library: &str, version: &str) -> bool {
        let (namespace, number) = split_version(version);
        match self.symbol_versions.get(namespace) {
            Some(allowed) if namespace_serves(namespace, library) => allowed.contains(number),
            _ => true,
        }
    }

    /// Whether `symbol` must not be taken from `library`.
    pub fn is_blacklisted(&self, library: &str, symbol: &str) -> bool {
        self.blacklist
            .get(library)
            .is_some_and(|symbols| symbols.contains(symbol))
    }

    /// The oldest policy for which `satisfies` holds, if any. The audit uses
    /// it with "this tree has no policy findings under `p`".
    pub fn lowest_satisfying(
        mut satisfies: impl FnMut(&Policy) -> bool,
    ) -> Result<Option<&'static Policy>, ElfError> {
        Ok(Self::all()?.iter().find(|p| satisfies(p)))
    }
}

fn load(json: &str) -> Result<Vec<Policy>, String> {
    let raw: Vec<RawPolicy> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut policies = Vec::new();
    for p in raw {
        // `linux` is the "no promise" entry; it is not a baseline.
        let Some(glibc) = p.name.strip_prefix("manylinux_") else {
            continue;
        };
        let glibc = glibc
            .split_once('_')
            .and_then(|(a, b)| Some(Glibc::new(a.parse().ok()?, b.parse().ok()?)))
            .ok_or_else(|| format!("policy name {} has no glibc version", p.name))?;
        let symbol_versions = p
            .symbol_versions
            .get(ARCH)
            .ok_or_else(|| format!("policy {} has no {ARCH} symbol versions", p.name))?
            .iter()
            .map(|(ns, versions)| (ns.clone(), versions.iter().cloned().collect()))
            .collect();
        policies.push(Policy {
            name: p.name,
            aliases: p.aliases,
            glibc,
            priority: p.priority,
            symbol_versions,
            lib_whitelist: p.lib_whitelist.into_iter().collect(),
            blacklist: p
                .blacklist
                .into_iter()
                .map(|(lib, syms)| (lib, syms.into_iter().collect()))
                .collect(),
        });
    }
    // Oldest first: auditwheel gives older policies a higher priority.
    policies.sort_by_key(|p| std::cmp::Reverse(p.priority));
    Ok(policies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_loads_oldest_first_with_the_baselines_we_ship() {
        let all = Policy::all().unwrap();
        let names: Vec<_> = all.iter().map(Policy::glibc_string).collect();
        for want in ["2.17", "2.28", "2.31", "2.34", "2.36", "2.41"] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
        assert!(all.windows(2).all(|w| w[0].glibc < w[1].glibc), "{names:?}");
    }

    #[test]
    fn baseline_lookup_accepts_version_name_and_alias() {
        assert_eq!(Policy::for_name("2.31").unwrap().name, "manylinux_2_31");
        assert_eq!(
            Policy::for_name("manylinux_2_28").unwrap().glibc,
            Glibc::new(2, 28)
        );
        assert_eq!(
            Policy::for_name("manylinux2014").unwrap().glibc,
            Glibc::new(2, 17)
        );
    }

    #[test]
    fn unknown_baseline_lists_the_known_ones() {
        let err = Policy::for_name("2.99").unwrap_err().to_string();
        assert!(
            err.contains("2.99") && err.contains("2.17") && err.contains("2.41"),
            "{err}"
        );
    }

    #[test]
    fn versions_are_set_membership_per_library_family() {
        let p = Policy::for_name("2.31").unwrap();
        assert!(p.allows_version("libc.so.6", "GLIBC_2.14"));
        assert!(!p.allows_version("libc.so.6", "GLIBC_2.34"));
        assert!(!p.allows_version("libc.so.6", "GLIBC_PRIVATE"));
        assert!(!p.allows_version("ld-linux-x86-64.so.2", "GLIBC_2.35"));
        // Not from glibc: not the host's business.
        assert!(p.allows_version("libfoo.so.1", "GLIBC_2.34"));
        assert!(p.allows_version("libssl.so.3", "OPENSSL_3.0.0"));
        assert!(!p.allows_version("libstdc++.so.6", "GLIBCXX_3.4.30"));
        assert!(
            Policy::for_name("2.36")
                .unwrap()
                .allows_version("libc.so.6", "GLIBC_2.34")
        );
    }

    #[test]
    fn whitelist_blacklist_and_dynamic_linker() {
        let p = Policy::for_name("2.17").unwrap();
        assert!(p.allows_library("libc.so.6"));
        assert!(p.allows_library("ld-linux-x86-64.so.2"));
        assert!(!p.allows_library("libssl.so.1.1"));
        assert!(p.is_blacklisted("libz.so.1", "inflate_fast"));
        assert!(!p.is_blacklisted("libz.so.1", "inflate"));
    }

    #[test]
    fn lowest_satisfying_is_the_oldest_match() {
        let lowest = Policy::lowest_satisfying(|p| p.glibc >= Glibc::new(2, 30))
            .unwrap()
            .unwrap();
        assert_eq!(lowest.name, "manylinux_2_31");
        assert!(Policy::lowest_satisfying(|_| false).unwrap().is_none());
    }
}

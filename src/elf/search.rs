//! How ld.so finds a `DT_NEEDED` library, restricted to what can be known
//! from a tree of files: `$ORIGIN` expansion and the RPATH/RUNPATH rule.
//!
//! ld.so's order is `DT_RPATH` (only when there is no `DT_RUNPATH`),
//! `LD_LIBRARY_PATH`, `DT_RUNPATH`, `ld.so.cache`, then the default
//! directories. Inside a relocatable bundle only the `$ORIGIN` entries can
//! point into the bundle; the file's own directory is *not* searched
//! implicitly. Absolute entries point at the machine the bundle runs on,
//! which is why the audit flags them and repair drops them.

use serde::Serialize;

/// The search path the builder's loader would use for one requester; handed
/// to a [`crate::elf::repair::LibraryResolver`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SearchPath {
    /// Who needs the library: a path inside the bundle, or the builder path
    /// of a library being vendored. For messages and logs.
    pub requested_by: String,
    /// `DT_RPATH` directories to search before the cache, as absolute builder
    /// paths (`$ORIGIN` already expanded where it could be).
    pub rpath: Vec<String>,
    /// `DT_RUNPATH` directories, searched after `LD_LIBRARY_PATH`.
    pub runpath: Vec<String>,
}

impl SearchPath {
    /// The directories to try, in ld.so order, before `ld.so.cache` and the
    /// default directories (which are the resolver's own knowledge).
    pub fn dirs(&self) -> impl Iterator<Item = &str> {
        let rpath: &[String] = if self.runpath.is_empty() {
            &self.rpath
        } else {
            &[]
        };
        rpath.iter().chain(&self.runpath).map(String::as_str)
    }
}

/// If `entry` starts with `$ORIGIN` or `${ORIGIN}`, returns the rest (which
/// is empty or starts with `/`).
pub fn strip_origin(entry: &str) -> Option<&str> {
    let rest = entry
        .strip_prefix("$ORIGIN")
        .or_else(|| entry.strip_prefix("${ORIGIN}"))?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// Whether an RPATH/RUNPATH entry keeps a bundle relocatable: it must start
/// with `$ORIGIN`. Absolute, cwd-relative, empty and `$LIB`/`$PLATFORM`
/// entries do not.
pub fn is_origin_relative(entry: &str) -> bool {
    strip_origin(entry).is_some() && !entry.contains("$LIB") && !entry.contains("$PLATFORM")
}

/// Expands a `$ORIGIN` entry for a file whose directory is `origin_dir`
/// (relative to the tree root, `""` for the root). `None` for entries that
/// do not start with `$ORIGIN`.
pub fn expand_origin(entry: &str, origin_dir: &str) -> Option<String> {
    let rest = strip_origin(entry)?;
    Some(format!("{origin_dir}{rest}"))
}

/// The directory part of a `/`-separated relative path (`""` at the root).
pub fn parent_dir(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// A `$ORIGIN`-relative directory reaching `to_dir` from a file in
/// `from_dir` (both relative to the tree root, lexically normalised).
pub fn origin_relative(from_dir: &str, to_dir: &str) -> String {
    let from: Vec<&str> = from_dir.split('/').filter(|c| !c.is_empty()).collect();
    let to: Vec<&str> = to_dir.split('/').filter(|c| !c.is_empty()).collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = String::from("$ORIGIN");
    for _ in common..from.len() {
        out.push_str("/..");
    }
    for c in &to[common..] {
        out.push('/');
        out.push_str(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_forms() {
        assert_eq!(strip_origin("$ORIGIN/../lib"), Some("/../lib"));
        assert_eq!(strip_origin("${ORIGIN}"), Some(""));
        assert_eq!(strip_origin("$ORIGINAL/x"), None);
        assert!(!is_origin_relative("/usr/lib"));
        assert!(!is_origin_relative("lib"));
        assert!(!is_origin_relative(""));
        assert!(!is_origin_relative("$ORIGIN/$LIB"));
        assert_eq!(
            expand_origin("$ORIGIN/../lib", "bin").unwrap(),
            "bin/../lib"
        );
        assert_eq!(expand_origin("$ORIGIN", "").unwrap(), "");
    }

    #[test]
    fn relative_origin_paths() {
        assert_eq!(origin_relative("lib", "lib"), "$ORIGIN");
        assert_eq!(origin_relative("bin", "lib"), "$ORIGIN/../lib");
        assert_eq!(origin_relative("", "lib"), "$ORIGIN/lib");
        assert_eq!(
            origin_relative("python/lib/python3.11/lib-dynload", "lib"),
            "$ORIGIN/../../../../lib"
        );
        assert_eq!(parent_dir("a/b/c.so"), "a/b");
        assert_eq!(parent_dir("c.so"), "");
    }

    #[test]
    fn runpath_hides_rpath() {
        let s = SearchPath {
            requested_by: "x".into(),
            rpath: vec!["/a".into()],
            runpath: vec!["/b".into()],
        };
        assert_eq!(s.dirs().collect::<Vec<_>>(), ["/b"]);
        let s = SearchPath {
            runpath: vec![],
            ..s
        };
        assert_eq!(s.dirs().collect::<Vec<_>>(), ["/a"]);
    }
}

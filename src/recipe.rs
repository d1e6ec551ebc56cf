//! Recipes: parse and validate `hermetic.toml`.
//!
//! Data flow: the TOML text is deserialized into the raw [`Recipe`] (every
//! table `deny_unknown_fields`; values that get semantic checks are
//! [`toml::Spanned`] so their errors can point at a line), then
//! [`Recipe::load`] validates it and resolves it into a [`LoadedRecipe`]:
//! paths joined onto the recipe's directory, the version read from
//! `pyproject.toml` when asked, requirement files parsed and checked to be in
//! `--require-hashes` form, prune globs compiled once to prove they are valid.
//! [`LoadedRecipe`] is `Serialize` so `hermetic build --plan --json` can print
//! it. Every error names the file, line, column and key.
//!
//! # Schema (also in `recipes/README.md`)
//!
//! ```toml
//! [app]
//! name = "qr"                  # required; [A-Za-z0-9][A-Za-z0-9._-]*, ≤ 64 chars (a directory name)
//! version = "8.2"              # exactly one of `version` ...
//! # version_from = "pyproject.toml"   # ... or a pyproject.toml (relative to the recipe) whose
//! #                                   # [project].version is used
//! glibc = "2.31"               # required; default baseline, `2.N` (--glibc overrides)
//! python = "3.11"              # required; runtime version, `3.N` or `3.N.M`
//! source_date_epoch = 1700000000  # optional; last fallback after the env var and git
//!
//! [install]                    # at least one of project / requirements / build.collect
//! project = "."                # a local directory with a pyproject.toml
//! requirements = "requirements.txt"          # pinned `name==version --hash=sha256:…` only
//! build_requirements = "build-requirements.txt"  # same format; installed into the build
//! #                              environment only (build backends, Cython), never the bundle
//! no_binary = ["pyyaml"]       # distributions to compile from their sdist
//! launchers = ["qr"]           # console entry points exposed at the bundle's top
//! bytecode = "checked-hash"    # "none" (default): Python compiles at each start;
//! #                              "checked-hash": ship PEP 552 .pyc files (faster start, larger)
//!
//! [build]
//! system_packages = ["libyaml-dev"]    # Debian packages for the builder (`name` or `name=version`)
//! #                              or per package family, for builders of either kind (manylinux
//! #                              images are RPM-based): { deb = ["libyaml-dev"], rpm = ["libyaml-devel"] };
//! #                              a builder whose family has no list (and the recipe names some
//! #                              package) is an error while planning
//! commands = ["cc -o launcher launcher.c"]  # shell commands run in the builder, in order
//! collect = [{ from = "launcher", to = "bin/launcher" }]  # from: relative to the build's work
//! #                              directory; to: relative to the bundle root
//! compiler = "distro"          # "builder" (default): the builder's own CC/CXX, which on
//! #                              toolchain builders target the baseline (C++ with LLVM's libc++,
//! #                              linked statically); "distro": the builder distro's gcc/g++ and
//! #                              libstdc++ for sdists and commands (the audit then decides)
//!
//! [prune]
//! defaults = true              # apply DEFAULT_EXCLUDES (tests, __pycache__, headers, docs, …)
//! exclude = ["**/*.md"]        # globs over bundle-relative paths; `*` stops at `/`, `**` does not
//! keep = ["**/tests/data/**"]  # allow list: wins over every exclude
//!
//! [smoke]
//! command = ["qr", "--help"]   # required; argv, argv[0] a launcher or a bundle-relative path
//! expect = "usage"             # optional substring of stdout
//!
//! [archive]
//! compression = "zstd"         # "gzip" (default: .tar.gz) or "zstd" (.tar.zst)
//! level = 19                   # zstd only: 1-19, default 10
//! ```

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::glibc::Glibc;

/// Errors reading a recipe.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// An I/O error; `fs_err` puts the path in the message.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The TOML does not parse, or does not fit the schema (unknown key,
    /// wrong type, missing key).
    #[error("{}:{line}:{column}: {message}{}", path.display(), key.as_ref().map(|k| format!(" (in `{k}`)")).unwrap_or_default())]
    Parse {
        /// The recipe file.
        path: PathBuf,
        /// Line of the problem, 1-based.
        line: usize,
        /// Column of the problem, 1-based.
        column: usize,
        /// What is wrong, in the parser's words.
        message: String,
        /// The table or key it is in, when known.
        key: Option<String>,
    },
    /// A value that parses but is not acceptable.
    #[error("{}:{line}:{column}: `{key}`: {message}", path.display())]
    Invalid {
        /// The recipe file.
        path: PathBuf,
        /// Line of the value, 1-based.
        line: usize,
        /// Column of the value, 1-based.
        column: usize,
        /// The key, e.g. `app.glibc`.
        key: String,
        /// What is wrong with the value.
        message: String,
    },
    /// A requirements file that is not in `--require-hashes` form.
    #[error("{}:{line}: {message}", path.display())]
    Requirements {
        /// The requirements file.
        path: PathBuf,
        /// Line of the problem, 1-based.
        line: usize,
        /// What is wrong there.
        message: String,
    },
    /// `version_from` names a file without a usable `[project].version`.
    #[error("{}: {message} (from `app.version_from`)", path.display())]
    VersionFrom {
        /// The file `version_from` names.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// No recipe where one was looked for.
    #[error("no {DEFAULT_RECIPE} in {}: pass --recipe <file> or create one (see recipes/README.md)", dir.display())]
    NotFound {
        /// The directory searched.
        dir: PathBuf,
    },
}

/// File name looked for by [`Recipe::find_default`].
pub const DEFAULT_RECIPE: &str = "hermetic.toml";

/// Globs pruned from every bundle unless `[prune] defaults = false`. They
/// match bundle-relative paths; a matching directory drops all it contains.
pub const DEFAULT_EXCLUDES: &[&str] = &[
    // Bytecode: not shipped (it would record build-time state); Python
    // compiles on first import, or a later step writes checked-hash .pyc.
    "**/__pycache__",
    "**/*.pyc",
    // Test suites of packages and of the standard library.
    "**/tests",
    "**/test",
    // Headers and static libraries are for building against, not running.
    "python/runtime/include",
    "**/*.h",
    "**/*.a",
    // Documentation.
    "python/runtime/share/man",
    "python/runtime/share/doc",
    // Standard-library parts a headless app never imports.
    "python/runtime/lib/python3.*/idlelib",
    "python/runtime/lib/python3.*/tkinter",
    "python/runtime/lib/python3.*/turtledemo",
    "python/runtime/lib/python3.*/ensurepip",
];

/// Names a launcher may not take: the bundle's own top-level directories.
const RESERVED_TOP: &[&str] = &["bin", "lib", "python"];

/// Raw recipe, exactly as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// `[app]`: name, version, baseline and Python.
    pub app: App,
    /// `[install]`: what goes into the runtime.
    #[serde(default)]
    pub install: Install,
    /// `[build]`: system packages and commands for the builder.
    #[serde(default)]
    pub build: Build,
    /// `[prune]`: what is dropped from the bundle.
    #[serde(default)]
    pub prune: Prune,
    /// `[smoke]`: the command that proves the bundle runs.
    pub smoke: Smoke,
    /// `[archive]`: how the archive is compressed.
    #[serde(default)]
    pub archive: ArchiveTable,
}

/// `[archive]`: how the bundle archive is compressed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveTable {
    /// `gzip` (the default) or `zstd`.
    pub compression: Option<Spanned<String>>,
    /// zstd level, 1 to 19.
    pub level: Option<Spanned<i64>>,
}

/// `[app]`: what the bundle is called and what it runs on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// Bundle name: `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 64 characters.
    pub name: Spanned<String>,
    /// Bundle version; exactly one of this and `version_from`.
    pub version: Option<Spanned<String>>,
    /// A `pyproject.toml` whose `[project].version` is the bundle version.
    pub version_from: Option<Spanned<String>>,
    /// Default glibc baseline, `2.N`.
    pub glibc: Spanned<String>,
    /// Runtime Python, `3.N` or `3.N.M`.
    pub python: Spanned<String>,
    /// Epoch used when neither `SOURCE_DATE_EPOCH` nor git gives one.
    pub source_date_epoch: Option<u64>,
}

/// `[install]`: what goes into the bundle's Python environment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Install {
    /// Local project directory containing `pyproject.toml`.
    pub project: Option<Spanned<String>>,
    /// Hash-pinned requirements installed into the runtime.
    pub requirements: Option<Spanned<String>>,
    /// Hash-pinned build requirements: the build environment only.
    pub build_requirements: Option<Spanned<String>>,
    /// Projects compiled from their sdist.
    #[serde(default)]
    pub no_binary: Vec<Spanned<String>>,
    /// Console entry points exposed at the bundle's top.
    #[serde(default)]
    pub launchers: Vec<Spanned<String>>,
    /// `none` (the default) or `checked-hash`.
    pub bytecode: Option<Spanned<String>>,
}

/// Whether the bundle ships Python bytecode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bytecode {
    /// No `.pyc` files: Python compiles in memory at each start.
    #[default]
    None,
    /// PEP 552 checked-hash `.pyc` files: validated against the source's
    /// hash, not its mtime, so they are reproducible and never go stale.
    CheckedHash,
}

/// `[build]`: extra work done in the builder.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// Packages installed into the builder.
    #[serde(default)]
    pub system_packages: SystemPackagesField,
    /// Shell commands run in the builder, in order.
    #[serde(default)]
    pub commands: Vec<Spanned<String>>,
    /// Files the commands make, copied into the bundle.
    #[serde(default)]
    pub collect: Vec<Collect>,
    /// Which C and C++ compilers sdists and the commands use.
    pub compiler: Option<Spanned<String>>,
}

/// `[build].system_packages` as written: a plain list (Debian names) or a
/// table with a list per package family, every name with its span.
#[derive(Debug, Clone, Default)]
pub struct SystemPackagesField {
    deb: Option<Vec<Spanned<String>>>,
    rpm: Option<Vec<Spanned<String>>>,
}

impl<'de> Deserialize<'de> for SystemPackagesField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, SeqAccess, Visitor};
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = SystemPackagesField;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a list of Debian package names, or a table of lists per family: \
                     { deb = [...], rpm = [...] }",
                )
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<Spanned<String>>()? {
                    names.push(name);
                }
                Ok(SystemPackagesField {
                    deb: Some(names),
                    rpm: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut field = SystemPackagesField::default();
                while let Some(family) = map.next_key::<String>()? {
                    let (slot, name) = match family.as_str() {
                        "deb" => (&mut field.deb, "deb"),
                        "rpm" => (&mut field.rpm, "rpm"),
                        other => return Err(de::Error::unknown_field(other, &["deb", "rpm"])),
                    };
                    if slot.is_some() {
                        return Err(de::Error::duplicate_field(name));
                    }
                    *slot = Some(map.next_value()?);
                }
                Ok(field)
            }
        }
        d.deserialize_any(Either)
    }
}

/// The system packages a recipe asks for, per package family of the
/// builder. A family without a list is not covered, unless the recipe
/// names no package at all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SystemPackages {
    /// Debian names (`name` or `name=version`), for apt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deb: Option<Vec<String>>,
    /// RPM names, for dnf or yum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm: Option<Vec<String>>,
}

impl SystemPackages {
    /// Whether no family names any package.
    pub fn is_empty(&self) -> bool {
        [&self.deb, &self.rpm]
            .into_iter()
            .all(|l| l.as_ref().is_none_or(Vec::is_empty))
    }

    /// The list for a builder of this family; `None` when the recipe names
    /// packages but none for this family.
    pub fn for_family(&self, family: crate::catalog::PackageFamily) -> Option<&[String]> {
        use crate::catalog::PackageFamily;
        let list = match family {
            PackageFamily::Deb => &self.deb,
            PackageFamily::Rpm => &self.rpm,
        };
        match list {
            Some(names) => Some(names),
            None if self.is_empty() => Some(&[]),
            None => None,
        }
    }

    /// The families the recipe gives a list for.
    pub fn families(&self) -> Vec<crate::catalog::PackageFamily> {
        use crate::catalog::PackageFamily;
        let mut v = Vec::new();
        if self.deb.is_some() {
            v.push(PackageFamily::Deb);
        }
        if self.rpm.is_some() {
            v.push(PackageFamily::Rpm);
        }
        v
    }

    /// Every name, each with its family, for descriptions.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (family, list) in [("deb", &self.deb), ("rpm", &self.rpm)] {
            if let Some(names) = list.as_ref().filter(|n| !n.is_empty()) {
                parts.push(format!("{family}: {}", names.join(", ")));
            }
        }
        parts.join("; ")
    }
}

/// Which C and C++ compilers sdists and build commands use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compiler {
    /// The builder's own `CC`/`CXX`: gcc/g++ on distro builders;
    /// `hermetic-cc`/`hermetic-c++` (zig, targeting the baseline, C++ with
    /// a static libc++) on toolchain builders.
    #[default]
    Builder,
    /// The builder distro's gcc/g++ and libstdc++, also on toolchain
    /// builders: C++ objects that must share libstdc++ with prebuilt wheels.
    /// Whatever needs a glibc newer than the baseline fails the audit.
    Distro,
}

/// One file produced by `[build].commands` to copy into the bundle.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collect {
    /// Path relative to the build's working directory.
    pub from: Spanned<String>,
    /// Path relative to the bundle top.
    pub to: Spanned<String>,
}

/// `[prune]`: what to drop from the bundle.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prune {
    /// Whether the default excludes apply.
    #[serde(default = "yes")]
    pub defaults: bool,
    /// Extra globs to drop.
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
    /// Globs to keep; a keep wins over every exclude.
    #[serde(default)]
    pub keep: Vec<Spanned<String>>,
}

impl Default for Prune {
    fn default() -> Self {
        Prune {
            defaults: true,
            exclude: Vec::new(),
            keep: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}

/// `[smoke]`: the command that proves a relocated bundle works.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smoke {
    /// The argv to run; the first element is relative to the bundle top.
    pub command: Spanned<Vec<String>>,
    /// A substring stdout must contain.
    pub expect: Option<String>,
}

/// A recipe after validation, with paths resolved against its directory.
#[derive(Debug, Clone, Serialize)]
pub struct LoadedRecipe {
    /// The recipe file as it was given.
    pub path: PathBuf,
    /// Its directory; every relative path in the recipe is relative to it.
    pub dir: PathBuf,
    /// SHA-256 (hex) of the recipe file's bytes.
    pub sha256: String,
    /// Bundle name.
    pub name: String,
    /// Bundle version (from `version` or `version_from`).
    pub version: String,
    /// Default glibc baseline.
    pub glibc: Glibc,
    /// Runtime Python version, `3.N` or `3.N.M`.
    pub python: String,
    /// The recipe's own fallback for SOURCE_DATE_EPOCH.
    pub source_date_epoch: Option<u64>,
    /// Resolved `[install]`.
    pub install: InstallSettings,
    /// Resolved `[build]`.
    pub build: BuildSettings,
    /// Resolved `[prune]`.
    pub prune: PruneSettings,
    /// Resolved `[smoke]`.
    pub smoke: SmokeSettings,
    /// Compression of the bundle archive.
    pub compression: crate::archive::Compression,
}

/// Resolved `[install]`.
#[derive(Debug, Clone, Serialize)]
pub struct InstallSettings {
    /// Local project directory (contains `pyproject.toml`).
    pub project: Option<PathBuf>,
    /// Requirements installed into the runtime.
    pub requirements: Option<Requirements>,
    /// Requirements for the build environment only.
    pub build_requirements: Option<Requirements>,
    /// Projects compiled from their sdist.
    pub no_binary: Vec<String>,
    /// Console entry points exposed at the bundle's top.
    pub launchers: Vec<String>,
    /// Whether `.pyc` files are shipped.
    pub bytecode: Bytecode,
}

/// A parsed `--require-hashes` requirements file.
#[derive(Debug, Clone, Serialize)]
pub struct Requirements {
    /// The file, resolved against the recipe's directory.
    pub path: PathBuf,
    /// Its requirements, in file order.
    pub entries: Vec<Requirement>,
}

/// One pinned requirement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requirement {
    /// As written (before `[extras]`).
    pub name: String,
    /// `[a,b]` extras, as written.
    pub extras: Vec<String>,
    /// The pinned version (`==`).
    pub version: String,
    /// Environment marker after `;`, as written.
    pub marker: Option<String>,
    /// Accepted sha256 digests (hex), any of which may match.
    pub sha256: Vec<String>,
    /// Line where the requirement starts.
    pub line: usize,
}

/// Resolved `[build]`.
#[derive(Debug, Clone, Serialize)]
pub struct BuildSettings {
    /// Packages installed into the builder, per family.
    pub system_packages: SystemPackages,
    /// Shell commands run in the builder, in order.
    pub commands: Vec<String>,
    /// Files the commands make, copied into the bundle.
    pub collect: Vec<CollectSettings>,
    /// Which C and C++ compilers sdists and the commands use.
    pub compiler: Compiler,
}

/// A validated collect rule: both paths relative, neither escaping.
#[derive(Debug, Clone, Serialize)]
pub struct CollectSettings {
    /// Relative to the build's working directory in the builder.
    pub from: String,
    /// Relative to the bundle root.
    pub to: String,
}

/// Resolved `[prune]`: the effective lists (defaults already merged in).
#[derive(Debug, Clone, Serialize)]
pub struct PruneSettings {
    /// Globs dropped from the bundle.
    pub exclude: Vec<String>,
    /// Globs kept whatever the excludes say.
    pub keep: Vec<String>,
}

/// Resolved `[smoke]`.
#[derive(Debug, Clone, Serialize)]
pub struct SmokeSettings {
    /// The argv to run.
    pub command: Vec<String>,
    /// A substring stdout must contain.
    pub expect: Option<String>,
}

/// Compiled prune rules.
#[derive(Debug, Clone)]
pub struct PruneMatcher {
    exclude: globset::GlobSet,
    keep: globset::GlobSet,
}

impl PruneMatcher {
    /// Whether the bundle-relative `path` (`/`-separated) is pruned: it or
    /// one of its ancestors matches an exclude glob, and neither it nor an
    /// ancestor matches a keep glob. Directories left empty are the
    /// caller's to remove.
    pub fn is_excluded(&self, path: &str) -> bool {
        let hit = |set: &globset::GlobSet| ancestors_and_self(path).any(|p| set.is_match(p));
        hit(&self.exclude) && !hit(&self.keep)
    }
}

fn ancestors_and_self(path: &str) -> impl Iterator<Item = &str> {
    path.char_indices()
        .filter(|&(_, c)| c == '/')
        .map(move |(i, _)| &path[..i])
        .chain(std::iter::once(path))
}

impl PruneSettings {
    /// Compile the globs (validated at load, so this only fails on a
    /// hand-built `PruneSettings`).
    pub fn matcher(&self) -> Result<PruneMatcher, globset::Error> {
        Ok(PruneMatcher {
            exclude: glob_set(&self.exclude)?,
            keep: glob_set(&self.keep)?,
        })
    }
}

fn glob(pattern: &str) -> Result<globset::Glob, globset::Error> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
}

fn glob_set(patterns: &[String]) -> Result<globset::GlobSet, globset::Error> {
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns {
        b.add(glob(p)?);
    }
    b.build()
}

impl LoadedRecipe {
    /// SHA-256 (hex) of the recipe file's bytes, for the build record.
    pub fn recipe_hash(&self) -> String {
        self.sha256.clone()
    }
}

impl Recipe {
    /// Parse TOML text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Recipe, RecipeError> {
        toml::from_str(text).map_err(|e| parse_error(e, text, path))
    }

    /// Read, parse and validate the recipe at `path`, resolving its relative
    /// paths against its directory.
    pub fn load(path: &Path) -> Result<LoadedRecipe, RecipeError> {
        let bytes = fs_err::read(path)?;
        let text = String::from_utf8(bytes.clone()).map_err(|e| RecipeError::Parse {
            path: path.to_owned(),
            line: 1,
            column: 1,
            message: format!("recipe is not valid UTF-8: {e}"),
            key: None,
        })?;
        let recipe = Recipe::parse(&text, path)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let cx = Cx {
            path,
            dir: &dir,
            text: &text,
        };
        recipe.resolve(&cx, hex::encode(Sha256::digest(&bytes)))
    }

    /// `dir/hermetic.toml`, or an error saying how to pass a recipe.
    pub fn find_default(dir: &Path) -> Result<PathBuf, RecipeError> {
        let candidate = dir.join(DEFAULT_RECIPE);
        if candidate.is_file() {
            Ok(candidate)
        } else {
            Err(RecipeError::NotFound {
                dir: dir.to_owned(),
            })
        }
    }

    fn resolve(self, cx: &Cx, sha256: String) -> Result<LoadedRecipe, RecipeError> {
        let Recipe {
            app,
            install,
            build,
            prune,
            smoke,
            archive,
        } = self;

        // [app]
        check(
            cx,
            &app.name,
            "app.name",
            is_safe_name(app.name.get_ref(), 64),
            || {
                "must be 1-64 characters from [A-Za-z0-9._-], starting with a letter or digit (it becomes a directory name)".into()
            },
        )?;
        let version = match (&app.version, &app.version_from) {
            (Some(v), None) => {
                check(cx, v, "app.version", is_safe_version(v.get_ref()), || {
                    "must be 1-64 characters from [A-Za-z0-9._+!-], starting with a letter or digit"
                        .into()
                })?;
                v.get_ref().clone()
            }
            (None, Some(from)) => {
                let file = cx.relative_path(from, "app.version_from")?;
                cx.existing(from, "app.version_from", &file, false)?;
                version_from_pyproject(&file)?
            }
            (Some(v), Some(_)) => {
                return Err(cx.invalid(
                    v.span(),
                    "app.version",
                    "set either `version` or `version_from`, not both",
                ));
            }
            (None, None) => {
                return Err(cx.invalid(
                    app.name.span(),
                    "app",
                    "set `version`, or `version_from = \"pyproject.toml\"`",
                ));
            }
        };
        let glibc = match app.glibc.get_ref().parse::<Glibc>() {
            Ok(g) if is_dotted(app.glibc.get_ref(), "2", 1) => g,
            _ => {
                return Err(cx.invalid(
                    app.glibc.span(),
                    "app.glibc",
                    &format!(
                        "`{}` is not a glibc baseline like \"2.31\"",
                        app.glibc.get_ref()
                    ),
                ));
            }
        };
        check(
            cx,
            &app.python,
            "app.python",
            is_dotted(app.python.get_ref(), "3", 1) || is_dotted(app.python.get_ref(), "3", 2),
            || {
                format!(
                    "`{}` is not a Python version like \"3.11\"",
                    app.python.get_ref()
                )
            },
        )?;

        // [install]
        let project = match &install.project {
            Some(p) => {
                let dir = cx.relative_path(p, "install.project")?;
                cx.existing(p, "install.project", &dir, true)?;
                if !dir.join("pyproject.toml").is_file() {
                    return Err(cx.invalid(
                        p.span(),
                        "install.project",
                        &format!("{} has no pyproject.toml", dir.display()),
                    ));
                }
                Some(dir)
            }
            None => None,
        };
        let load_reqs =
            |r: &Option<Spanned<String>>, key: &str| -> Result<Option<Requirements>, RecipeError> {
                match r {
                    Some(r) => {
                        let file = cx.relative_path(r, key)?;
                        cx.existing(r, key, &file, false)?;
                        let text = fs_err::read_to_string(&file)?;
                        let entries = parse_requirements(&text, &file)?;
                        Ok(Some(Requirements {
                            path: file,
                            entries,
                        }))
                    }
                    None => Ok(None),
                }
            };
        let requirements = load_reqs(&install.requirements, "install.requirements")?;
        let build_requirements =
            load_reqs(&install.build_requirements, "install.build_requirements")?;
        for n in &install.no_binary {
            check(
                cx,
                n,
                "install.no_binary",
                is_safe_name(n.get_ref(), 128),
                || format!("`{}` is not a distribution name", n.get_ref()),
            )?;
        }
        let mut seen = BTreeSet::new();
        for l in &install.launchers {
            check(
                cx,
                l,
                "install.launchers",
                is_safe_name(l.get_ref(), 64) && !RESERVED_TOP.contains(&l.get_ref().as_str()),
                || {
                    format!(
                        "`{}` is not a usable launcher name (safe characters, not one of bin, lib, python)",
                        l.get_ref()
                    )
                },
            )?;
            check(
                cx,
                l,
                "install.launchers",
                seen.insert(l.get_ref().clone()),
                || format!("`{}` is listed twice", l.get_ref()),
            )?;
        }

        // [build]
        for p in build.system_packages.deb.iter().flatten() {
            check(
                cx,
                p,
                "build.system_packages",
                is_debian_package(p.get_ref()),
                || {
                    format!(
                        "`{}` is not a Debian package name (optionally `name=version`)",
                        p.get_ref()
                    )
                },
            )?;
        }
        for p in build.system_packages.rpm.iter().flatten() {
            check(
                cx,
                p,
                "build.system_packages.rpm",
                is_rpm_package(p.get_ref()),
                || format!("`{}` is not an RPM package name", p.get_ref()),
            )?;
        }
        for c in &build.commands {
            check(
                cx,
                c,
                "build.commands",
                !c.get_ref().trim().is_empty(),
                || "empty command".into(),
            )?;
        }
        let mut collect = Vec::new();
        let mut targets = BTreeSet::new();
        for c in &build.collect {
            for (value, key) in [(&c.from, "build.collect.from"), (&c.to, "build.collect.to")] {
                check(
                    cx,
                    value,
                    key,
                    normalized_relative(value.get_ref()).is_some(),
                    || {
                        format!(
                            "`{}` must be a relative path that stays inside its directory",
                            value.get_ref()
                        )
                    },
                )?;
            }
            let to = normalized_relative(c.to.get_ref()).unwrap_or_default();
            check(
                cx,
                &c.to,
                "build.collect.to",
                targets.insert(to.clone()),
                || format!("`{to}` is collected twice"),
            )?;
            collect.push(CollectSettings {
                from: normalized_relative(c.from.get_ref()).unwrap_or_default(),
                to,
            });
        }
        if project.is_none() && requirements.is_none() && collect.is_empty() {
            return Err(cx.invalid(
                0..0,
                "install",
                "nothing to install: set `install.project`, `install.requirements` or `build.collect`",
            ));
        }

        // [prune]
        let mut exclude: Vec<String> = if prune.defaults {
            DEFAULT_EXCLUDES.iter().map(|s| s.to_string()).collect()
        } else {
            Vec::new()
        };
        for (list, key) in [
            (&prune.exclude, "prune.exclude"),
            (&prune.keep, "prune.keep"),
        ] {
            for g in list {
                if let Err(e) = glob(g.get_ref()) {
                    return Err(cx.invalid(
                        g.span(),
                        key,
                        &format!("invalid glob `{}`: {}", g.get_ref(), e.kind()),
                    ));
                }
            }
        }
        exclude.extend(prune.exclude.iter().map(|g| g.get_ref().clone()));
        let keep = prune.keep.iter().map(|g| g.get_ref().clone()).collect();

        // [smoke]
        let command = smoke.command.get_ref();
        check(
            cx,
            &smoke.command,
            "smoke.command",
            command.first().is_some_and(|c| !c.is_empty()),
            || "must be a non-empty argv list, e.g. [\"app\", \"--version\"]".into(),
        )?;

        // [archive]
        let compression = archive_compression(cx, &archive)?;
        let bytecode = one_of(
            cx,
            install.bytecode.as_ref(),
            "install.bytecode",
            &[
                ("none", Bytecode::None),
                ("checked-hash", Bytecode::CheckedHash),
            ],
        )?;
        let compiler = one_of(
            cx,
            build.compiler.as_ref(),
            "build.compiler",
            &[("builder", Compiler::Builder), ("distro", Compiler::Distro)],
        )?;

        Ok(LoadedRecipe {
            path: cx.path.to_owned(),
            dir: cx.dir.to_owned(),
            sha256,
            name: app.name.into_inner(),
            version,
            glibc,
            python: app.python.into_inner(),
            source_date_epoch: app.source_date_epoch,
            install: InstallSettings {
                project,
                requirements,
                build_requirements,
                no_binary: install
                    .no_binary
                    .into_iter()
                    .map(Spanned::into_inner)
                    .collect(),
                launchers: install
                    .launchers
                    .into_iter()
                    .map(Spanned::into_inner)
                    .collect(),
                bytecode,
            },
            build: BuildSettings {
                system_packages: {
                    let names = |l: Option<Vec<Spanned<String>>>| {
                        l.map(|l| l.into_iter().map(Spanned::into_inner).collect())
                    };
                    SystemPackages {
                        deb: names(build.system_packages.deb),
                        rpm: names(build.system_packages.rpm),
                    }
                },
                commands: build
                    .commands
                    .into_iter()
                    .map(Spanned::into_inner)
                    .collect(),
                collect,
                compiler,
            },
            prune: PruneSettings { exclude, keep },
            smoke: SmokeSettings {
                command: smoke.command.into_inner(),
                expect: smoke.expect,
            },
            compression,
        })
    }
}

/// A key whose value is one of a few names: the value of the name given,
/// the first (the default) when the key is absent, an error naming the key,
/// the value and the names otherwise.
fn one_of<T: Copy>(
    cx: &Cx,
    value: Option<&Spanned<String>>,
    key: &str,
    names: &[(&str, T)],
) -> Result<T, RecipeError> {
    let Some(value) = value else {
        return Ok(names[0].1);
    };
    match names.iter().find(|(n, _)| n == value.get_ref()) {
        Some((_, v)) => Ok(*v),
        None => {
            let listed: Vec<String> = names.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            Err(cx.invalid(
                value.span(),
                key,
                &format!("`{}` is not {}", value.get_ref(), listed.join(" or ")),
            ))
        }
    }
}

/// `[archive]` → the archive's compression.
fn archive_compression(
    cx: &Cx,
    table: &ArchiveTable,
) -> Result<crate::archive::Compression, RecipeError> {
    use crate::archive::{Compression, ZSTD_DEFAULT_LEVEL, ZSTD_LEVELS};
    let kind = table.compression.as_ref().map(|c| c.get_ref().as_str());
    match (kind, &table.level) {
        (None | Some("gzip"), None) => Ok(Compression::Gzip),
        (None | Some("gzip"), Some(level)) => Err(cx.invalid(
            level.span(),
            "archive.level",
            "a level applies to zstd only (gzip is always level 6); set `compression = \"zstd\"` or drop `level`",
        )),
        (Some("zstd"), level) => {
            let level = match level {
                None => ZSTD_DEFAULT_LEVEL,
                Some(l) => match i32::try_from(*l.get_ref()) {
                    Ok(n) if ZSTD_LEVELS.contains(&n) => n,
                    _ => {
                        return Err(cx.invalid(
                            l.span(),
                            "archive.level",
                            &format!(
                                "zstd level must be {}-{}",
                                ZSTD_LEVELS.start(),
                                ZSTD_LEVELS.end()
                            ),
                        ));
                    }
                },
            };
            Ok(Compression::Zstd { level })
        }
        (Some(other), _) => Err(cx.invalid(
            table.compression.as_ref().map(|c| c.span()).unwrap_or(0..0),
            "archive.compression",
            &format!("`{other}` is not \"gzip\" or \"zstd\""),
        )),
    }
}

/// What semantic checks need to build an error.
struct Cx<'a> {
    path: &'a Path,
    dir: &'a Path,
    text: &'a str,
}

impl Cx<'_> {
    fn invalid(&self, span: Range<usize>, key: &str, message: &str) -> RecipeError {
        let (line, column) = line_col(self.text, span.start);
        RecipeError::Invalid {
            path: self.path.to_owned(),
            line,
            column,
            key: key.to_owned(),
            message: message.to_owned(),
        }
    }

    /// A recipe path that must be relative and stay inside the recipe's
    /// directory, joined onto that directory.
    fn relative_path(&self, value: &Spanned<String>, key: &str) -> Result<PathBuf, RecipeError> {
        match normalized_relative(value.get_ref()) {
            Some(rel) if rel.is_empty() => Ok(self.dir.to_owned()),
            Some(rel) => Ok(self.dir.join(rel)),
            None => Err(self.invalid(
                value.span(),
                key,
                &format!(
                    "`{}` must be a relative path inside the recipe's directory",
                    value.get_ref()
                ),
            )),
        }
    }

    /// The resolved path must exist with the right kind, and must not leave
    /// the recipe's directory through a symlink either.
    fn existing(
        &self,
        value: &Spanned<String>,
        key: &str,
        resolved: &Path,
        want_dir: bool,
    ) -> Result<(), RecipeError> {
        let kind = if want_dir { "directory" } else { "file" };
        let ok = if want_dir {
            resolved.is_dir()
        } else {
            resolved.is_file()
        };
        if !ok {
            return Err(self.invalid(
                value.span(),
                key,
                &format!("{kind} {} does not exist", resolved.display()),
            ));
        }
        if let (Ok(real), Ok(base)) = (resolved.canonicalize(), self.dir.canonicalize())
            && !real.starts_with(&base)
        {
            return Err(self.invalid(
                value.span(),
                key,
                &format!(
                    "{} resolves outside the recipe's directory (to {})",
                    resolved.display(),
                    real.display()
                ),
            ));
        }
        Ok(())
    }
}

fn check(
    cx: &Cx,
    value: &Spanned<impl Sized>,
    key: &str,
    ok: bool,
    message: impl FnOnce() -> String,
) -> Result<(), RecipeError> {
    if ok {
        Ok(())
    } else {
        Err(cx.invalid(value.span(), key, &message()))
    }
}

/// Turn a toml error into `file:line:col: message (in `key`)`.
fn parse_error(mut e: toml::de::Error, text: &str, path: &Path) -> RecipeError {
    let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
    let message = e.message().trim().to_owned();
    // toml keeps the key path private, but prints it as a last line
    // "in `a.b`" when the error has no input attached.
    e.set_input(None);
    let rendered = e.to_string();
    let key = rendered
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("in `"))
        .and_then(|l| l.strip_suffix('`'))
        .map(str::to_owned)
        .or_else(|| key_at(text, e.span().map(|s| s.start).unwrap_or(0)));
    RecipeError::Parse {
        path: path.to_owned(),
        line,
        column,
        message,
        key,
    }
}

/// Best-effort `table.key` for the line holding `offset`, for errors where
/// toml does not report one.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().to_owned())
        .filter(|k| !k.is_empty() && !k.starts_with('['))?;
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key,
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn is_safe_name(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// A version usable in a file name: like [`is_safe_name`], plus `+` (local
/// versions) and `!` (epochs).
fn is_safe_version(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'+' | b'!'))
}

/// `major.N` (parts = 1) or `major.N.M` (parts = 2), decimal without
/// leading zeros.
fn is_dotted(s: &str, major: &str, parts: usize) -> bool {
    let mut it = s.split('.');
    it.next() == Some(major) && {
        let rest: Vec<&str> = it.collect();
        rest.len() == parts
            && rest.iter().all(|p| {
                !p.is_empty()
                    && p.bytes().all(|c| c.is_ascii_digit())
                    && (p.len() == 1 || !p.starts_with('0'))
            })
    }
}

/// Debian policy: lowercase alphanumerics and `+-.`, at least two chars,
/// starting alphanumeric; optionally `=version`.
fn is_debian_package(s: &str) -> bool {
    let (name, version) = match s.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (s, None),
    };
    let name_ok = name.len() >= 2
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.')
        });
    let version_ok = version.is_none_or(|v| {
        !v.is_empty()
            && v.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'+' | b'~' | b':' | b'-'))
    });
    name_ok && version_ok
}

/// RPM names as dnf and yum take them: alphanumerics and `._+-`, at least
/// two chars, starting alphanumeric (a version goes after a `-`), or a
/// `pkgconfig(name)`-style capability.
fn is_rpm_package(s: &str) -> bool {
    let plain = |n: &str| {
        n.len() >= 2
            && n.as_bytes()[0].is_ascii_alphanumeric()
            && n.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'+' | b'-'))
    };
    match s.split_once('(') {
        None => plain(s),
        Some((capability, rest)) => {
            plain(capability)
                && rest
                    .strip_suffix(')')
                    .is_some_and(|inner| !inner.is_empty() && plain(inner))
        }
    }
}

/// `a/./b/` -> `a/b`; `None` for absolute paths and paths that climb out.
/// `.` gives the empty string.
fn normalized_relative(s: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    if s.is_empty() {
        return None;
    }
    for c in Path::new(s).components() {
        match c {
            Component::Normal(n) => parts.push(n.to_str()?),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

/// `[project].version` of a pyproject.toml.
fn version_from_pyproject(path: &Path) -> Result<String, RecipeError> {
    let text = fs_err::read_to_string(path)?;
    let err = |message: String| RecipeError::VersionFrom {
        path: path.to_owned(),
        message,
    };
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        let (line, col) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
        err(format!("{line}:{col}: {}", e.message().trim()))
    })?;
    let project = table
        .get("project")
        .and_then(|p| p.as_table())
        .ok_or_else(|| err("no [project] table".into()))?;
    match project.get("version") {
        Some(toml::Value::String(v)) if is_safe_version(v) => Ok(v.clone()),
        Some(toml::Value::String(v)) => Err(err(format!(
            "[project].version `{v}` is not a usable version"
        ))),
        Some(_) => Err(err("[project].version is not a string".into())),
        None => {
            let dynamic = project
                .get("dynamic")
                .and_then(|d| d.as_array())
                .is_some_and(|d| d.iter().any(|v| v.as_str() == Some("version")));
            Err(err(if dynamic {
                "[project].version is dynamic; set `version` in the recipe instead".into()
            } else {
                "[project] has no `version`".into()
            }))
        }
    }
}

/// Parse a requirements file in `--require-hashes` form: every requirement
/// `name[extras]==version [; marker] --hash=sha256:<hex> ...`, with `\`
/// continuations and `#` comments. Options other than `--require-hashes`
/// (indexes, find-links, nested `-r`) are refused: the fetch phase decides
/// where packages come from, and every input must be hashed.
pub fn parse_requirements(text: &str, path: &Path) -> Result<Vec<Requirement>, RecipeError> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut logical = String::new();
    let mut start_line = 0;
    let lines: Vec<&str> = text.lines().collect();
    for (i, raw) in lines.iter().enumerate() {
        if logical.is_empty() {
            start_line = i + 1;
        }
        let line = strip_comment(raw);
        if let Some(cont) = line.strip_suffix('\\') {
            logical.push_str(cont);
            logical.push(' ');
            if i + 1 < lines.len() {
                continue;
            }
        } else {
            logical.push_str(line);
        }
        let entry = std::mem::take(&mut logical);
        let err = |message: String| RecipeError::Requirements {
            path: path.to_owned(),
            line: start_line,
            message,
        };
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        if entry.starts_with('-') {
            if entry == "--require-hashes" {
                continue;
            }
            return Err(err(format!(
                "unsupported option `{}`: only pinned requirements with --hash are allowed",
                entry.split_whitespace().next().unwrap_or(entry)
            )));
        }
        let req = parse_requirement(entry, start_line).map_err(err)?;
        if !seen.insert(normalize_project_name(&req.name)) {
            return Err(err(format!("`{}` is listed twice", req.name)));
        }
        out.push(req);
    }
    Ok(out)
}

fn strip_comment(line: &str) -> &str {
    // pip: a comment starts at `#` at the line start or after whitespace.
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return line[..i].trim_end();
        }
    }
    line.trim_end()
}

fn parse_requirement(entry: &str, line: usize) -> Result<Requirement, String> {
    let mut spec = Vec::new();
    let mut sha256 = Vec::new();
    let mut tokens = entry.split_whitespace();
    while let Some(tok) = tokens.next() {
        let value = if tok == "--hash" {
            Some(tokens.next().ok_or("`--hash` without a value")?)
        } else {
            tok.strip_prefix("--hash=")
        };
        match value {
            Some(v) => {
                let hex = v.strip_prefix("sha256:").ok_or_else(|| {
                    format!("hash `{v}` is not sha256 (hermetic's cache is sha256-addressed)")
                })?;
                if hex.len() != 64 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                    return Err(format!("`{v}` is not a sha256 digest (64 hex digits)"));
                }
                sha256.push(hex.to_ascii_lowercase());
            }
            None if tok.starts_with("--") => {
                return Err(format!("unsupported per-requirement option `{tok}`"));
            }
            None => spec.push(tok),
        }
    }
    let spec = spec.join(" ");
    let (req, marker) = match spec.split_once(';') {
        Some((r, m)) => (
            r.trim(),
            Some(m.trim().to_owned()).filter(|m| !m.is_empty()),
        ),
        None => (spec.trim(), None),
    };
    let (name_part, version) = req.split_once("==").ok_or_else(|| {
        format!("`{req}` is not pinned: write `name==version` with --hash=sha256:...")
    })?;
    let version = version.trim();
    let name_part = name_part.trim();
    let (name, extras) = match name_part.split_once('[') {
        Some((n, rest)) => {
            let inner = rest
                .strip_suffix(']')
                .ok_or_else(|| format!("unclosed extras in `{name_part}`"))?;
            (
                n.trim(),
                inner
                    .split(',')
                    .map(|e| e.trim().to_owned())
                    .filter(|e| !e.is_empty())
                    .collect(),
            )
        }
        None => (name_part, Vec::new()),
    };
    if !is_safe_name(name, 128) {
        return Err(format!("`{name}` is not a distribution name"));
    }
    if version.is_empty()
        || version.starts_with('=')
        || !version
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'+' | b'!' | b'-' | b'_'))
    {
        return Err(format!(
            "`{name}=={version}` is not pinned to one exact version"
        ));
    }
    if sha256.is_empty() {
        return Err(format!(
            "`{name}=={version}` has no --hash=sha256:... (required: --require-hashes)"
        ));
    }
    Ok(Requirement {
        name: name.to_owned(),
        extras,
        version: version.to_owned(),
        marker,
        sha256,
        line,
    })
}

/// PEP 503 normalisation of a Python project name: lowercase, every run
/// of `-`, `_` and `.` becomes one `-`. The one implementation hermetic uses
/// (requirements, fetched inputs, SBOM, image layers).
pub fn normalize_project_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            separator = true;
            continue;
        }
        if separator && !out.is_empty() {
            out.push('-');
        }
        separator = false;
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirement_forms() {
        let text = "# pinned\n\
            foo[bar, baz]==1.2.3 ; python_version >= \"3.8\" \\\n    --hash=sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA \\\n    --hash sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n\
            --require-hashes\n\
            Bar_Baz==2.0 --hash=sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc  # why\n";
        let reqs = parse_requirements(text, Path::new("r.txt")).unwrap();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].name, "foo");
        assert_eq!(reqs[0].extras, ["bar", "baz"]);
        assert_eq!(reqs[0].version, "1.2.3");
        assert_eq!(reqs[0].marker.as_deref(), Some("python_version >= \"3.8\""));
        assert_eq!(reqs[0].sha256.len(), 2);
        assert_eq!(reqs[0].sha256[0], "a".repeat(64));
        assert_eq!(reqs[0].line, 2);
        assert_eq!(reqs[1].line, 6);
    }

    #[test]
    fn requirement_errors_carry_lines() {
        let h = "--hash=sha256:".to_owned() + &"a".repeat(64);
        for (text, line, needle) in [
            (format!("a==1 {h}\nb>=1 {h}\n"), 2, "not pinned"),
            (format!("a==1 {h}\nb==1.*  {h}\n"), 2, "one exact version"),
            ("\n\nc==1\n".to_owned(), 3, "no --hash"),
            (
                format!("-i https://evil\na==1 {h}\n"),
                1,
                "unsupported option",
            ),
            ("a==1 \\\n --hash=md5:00\n".to_owned(), 1, "not sha256"),
            (format!("a==1 {h}\nA==2 {h}\n"), 2, "twice"),
        ] {
            let err = parse_requirements(&text, Path::new("req.txt")).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("req.txt:{line}: ")) && msg.contains(needle),
                "{msg}"
            );
        }
    }

    #[test]
    fn prune_matching() {
        let p = PruneSettings {
            exclude: vec![
                "**/tests".into(),
                "**/*.pyc".into(),
                "python/runtime/lib/python3.*/idlelib".into(),
            ],
            keep: vec!["lib/pkg/tests/data/**".into()],
        };
        let m = p.matcher().unwrap();
        assert!(m.is_excluded("lib/pkg/tests/test_x.py"));
        assert!(m.is_excluded("lib/pkg/tests"));
        assert!(!m.is_excluded("lib/pkg/tests/data/fixture.json"));
        assert!(m.is_excluded("a/b/c.pyc"));
        assert!(!m.is_excluded("a/b/c.py"));
        assert!(!m.is_excluded("lib/pkg/testsuite.py"));
        assert!(m.is_excluded("python/runtime/lib/python3.11/idlelib/x.py"));
    }

    #[test]
    fn system_packages_per_family() {
        use crate::catalog::PackageFamily::{Deb, Rpm};
        let list = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        // A plain list is Debian's: it does not cover RPM builders.
        let plain = SystemPackages {
            deb: list(&["libyaml-dev"]),
            rpm: None,
        };
        assert_eq!(
            plain.for_family(Deb),
            Some(&["libyaml-dev".to_string()][..])
        );
        assert_eq!(plain.for_family(Rpm), None);
        // Naming nothing covers every family; so does an empty list given.
        let none = SystemPackages {
            deb: list(&[]),
            rpm: None,
        };
        assert_eq!(none.for_family(Rpm), Some(&[][..]));
        let both = SystemPackages {
            deb: list(&["gcc"]),
            rpm: list(&[]),
        };
        assert_eq!(both.for_family(Rpm), Some(&[][..]));
        assert_eq!(both.families(), vec![Deb, Rpm]);
        assert!(is_rpm_package("libyaml-devel") && is_rpm_package("SDL2-devel"));
        assert!(is_rpm_package("pkgconfig(yaml-0.1)") && !is_rpm_package("pkgconfig()"));
        assert!(!is_rpm_package("a b") && !is_rpm_package("-x") && !is_rpm_package("x;y"));
    }

    #[test]
    fn small_validators() {
        assert!(
            is_dotted("2.31", "2", 1)
                && !is_dotted("2.031", "2", 1)
                && !is_dotted("2", "2", 1)
                && !is_dotted("3.1", "2", 1)
        );
        assert!(is_dotted("3.11.9", "3", 2));
        assert!(
            is_debian_package("libyaml-dev")
                && is_debian_package("g++=4:12.2.0-3")
                && !is_debian_package("Lib;rm")
        );
        assert_eq!(normalized_relative("./a/../b/"), Some("b".into()));
        assert_eq!(normalized_relative("../x"), None);
        assert_eq!(normalized_relative("/abs"), None);
        assert_eq!(key_at("[app]\nname = 3\n", 13), Some("app.name".into()));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}

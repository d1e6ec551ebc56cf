//! Recipe errors: malformed TOML, unknown keys, wrong types and bad values
//! all name the file, the line (and column) and the key.

// Tests fail by panicking: unwrap, expect and panic! are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

use hermetic::recipe::{Recipe, RecipeError};

const HASH: &str = "--hash=sha256:16e64e0716c14960108e85d853062c9e8bba5ca8252c0b4d0231b9df4060ff4f";

/// A recipe directory with `hermetic.toml` = `recipe` and a valid
/// requirements.txt.
fn dir_with(recipe: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("requirements.txt"),
        format!("qrcode==8.2 {HASH}\n"),
    )
    .unwrap();
    let path = dir.path().join("hermetic.toml");
    fs::write(&path, recipe).unwrap();
    (dir, path)
}

const GOOD: &str = r#"[app]
name = "demo"
version = "1.0"
glibc = "2.31"
python = "3.11"

[install]
requirements = "requirements.txt"
launchers = ["qr"]

[smoke]
command = ["qr", "--help"]
"#;

fn load_err(recipe: &str) -> (String, PathBuf, tempfile::TempDir) {
    let (dir, path) = dir_with(recipe);
    let err = Recipe::load(&path).unwrap_err();
    (err.to_string(), path, dir)
}

fn assert_at(msg: &str, path: &Path, line: usize, needles: &[&str]) {
    let prefix = format!("{}:{line}:", path.display());
    assert!(
        msg.starts_with(&prefix),
        "expected `{prefix}` at the start of: {msg}"
    );
    for n in needles {
        assert!(msg.contains(n), "expected `{n}` in: {msg}");
    }
}

#[test]
fn good_recipe_loads_and_resolves_paths() {
    let (dir, path) = dir_with(GOOD);
    let r = Recipe::load(&path).unwrap();
    assert_eq!(r.name, "demo");
    let reqs = r.install.requirements.as_ref().unwrap();
    assert_eq!(reqs.path, dir.path().join("requirements.txt"));
    assert_eq!(reqs.entries[0].name, "qrcode");
    assert!(
        r.prune.exclude.iter().any(|g| g == "**/__pycache__"),
        "defaults applied"
    );
    assert_eq!(r.recipe_hash().len(), 64);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["install"]["launchers"][0], "qr");
    assert_eq!(r.compression, hermetic::archive::Compression::Gzip);
    assert_eq!(r.install.bytecode, hermetic::recipe::Bytecode::None);
    let (_d, path) = dir_with(&GOOD.replace(
        "launchers = [\"qr\"]",
        "launchers = [\"qr\"]\nbytecode = \"checked-hash\"",
    ));
    assert_eq!(
        Recipe::load(&path).unwrap().install.bytecode,
        hermetic::recipe::Bytecode::CheckedHash
    );
    // [archive] compression = "zstd" with and without a level.
    for (table, level) in [("", 10), ("level = 19\n", 19)] {
        let (_d, path) = dir_with(&format!(
            "{GOOD}\n[archive]\ncompression = \"zstd\"\n{table}"
        ));
        let r = Recipe::load(&path).unwrap();
        assert_eq!(
            r.compression,
            hermetic::archive::Compression::Zstd { level }
        );
    }
}

#[test]
fn unknown_key() {
    let (msg, path, _d) = load_err(&GOOD.replace("name = \"demo\"", "nmae = \"demo\""));
    assert_at(
        &msg,
        &path,
        2,
        &["unknown field `nmae`", "expected one of", "`name`"],
    );
    assert!(
        msg.starts_with(&format!("{}:2:1:", path.display())),
        "{msg}"
    );
}

#[test]
fn unknown_table() {
    let (msg, path, _d) = load_err(&format!("{GOOD}\n[extra]\nx = 1\n"));
    assert_at(&msg, &path, 14, &["unknown field `extra`"]);
}

#[test]
fn wrong_type() {
    let (msg, path, _d) = load_err(&GOOD.replace("glibc = \"2.31\"", "glibc = 2.31"));
    assert_at(&msg, &path, 4, &["invalid type", "app.glibc"]);
    let (msg, path, _d) =
        load_err(&GOOD.replace("command = [\"qr\", \"--help\"]", "command = \"qr --help\""));
    assert_at(&msg, &path, 12, &["invalid type", "smoke.command"]);
}

#[test]
fn malformed_toml() {
    let (msg, path, _d) = load_err(&GOOD.replace("python = \"3.11\"", "python = \"3.11"));
    assert_at(&msg, &path, 5, &[]);
}

#[test]
fn missing_key() {
    let (msg, path, _d) = load_err(&GOOD.replace("glibc = \"2.31\"\n", ""));
    assert!(
        msg.starts_with(&path.display().to_string()) && msg.contains("missing field `glibc`"),
        "{msg}"
    );
}

#[test]
fn unhashed_requirement() {
    let (dir, path) = dir_with(GOOD);
    fs::write(
        dir.path().join("requirements.txt"),
        format!("qrcode==8.2 {HASH}\npillow==12.2.0\n"),
    )
    .unwrap();
    let msg = Recipe::load(&path).unwrap_err().to_string();
    let req = dir.path().join("requirements.txt");
    assert_at(&msg, &req, 2, &["pillow==12.2.0", "--hash"]);
}

#[test]
fn unpinned_requirement_across_continuation() {
    let (dir, path) = dir_with(GOOD);
    fs::write(
        dir.path().join("requirements.txt"),
        format!("# c\nqrcode>=8 \\\n    {HASH}\n"),
    )
    .unwrap();
    let msg = Recipe::load(&path).unwrap_err().to_string();
    assert_at(
        &msg,
        &dir.path().join("requirements.txt"),
        2,
        &["not pinned", "qrcode>=8"],
    );
}

#[test]
fn semantic_errors_point_at_the_value() {
    for (from, to, line, needles) in [
        (
            "name = \"demo\"",
            "name = \"../demo\"",
            2,
            vec!["`app.name`"],
        ),
        (
            "glibc = \"2.31\"",
            "glibc = \"2.x\"",
            4,
            vec!["`app.glibc`", "2.x"],
        ),
        (
            "python = \"3.11\"",
            "python = \"python3\"",
            5,
            vec!["`app.python`"],
        ),
        (
            "version = \"1.0\"",
            "version = \"1.0\"\nversion_from = \"pyproject.toml\"",
            3,
            vec!["not both"],
        ),
        (
            "requirements = \"requirements.txt\"",
            "requirements = \"../requirements.txt\"",
            8,
            vec!["`install.requirements`", "inside"],
        ),
        (
            "requirements = \"requirements.txt\"",
            "requirements = \"/etc/passwd\"",
            8,
            vec!["`install.requirements`"],
        ),
        (
            "requirements = \"requirements.txt\"",
            "requirements = \"missing.txt\"",
            8,
            vec!["does not exist"],
        ),
        (
            "launchers = [\"qr\"]",
            "launchers = [\"qr\", \"lib\"]",
            9,
            vec!["`install.launchers`", "`lib`"],
        ),
        (
            "launchers = [\"qr\"]",
            "launchers = [\"qr\"]\nbytecode = \"timestamp\"",
            10,
            vec!["`install.bytecode`", "`timestamp`", "checked-hash"],
        ),
        (
            "command = [\"qr\", \"--help\"]",
            "command = []",
            12,
            vec!["`smoke.command`"],
        ),
        (
            "command = [\"qr\", \"--help\"]",
            "command = [\"qr\", \"--help\"]\n\n[archive]\ncompression = \"xz\"",
            15,
            vec!["`archive.compression`", "`xz`"],
        ),
        (
            "command = [\"qr\", \"--help\"]",
            "command = [\"qr\", \"--help\"]\n\n[archive]\ncompression = \"zstd\"\nlevel = 22",
            16,
            vec!["`archive.level`", "1-19"],
        ),
        (
            "command = [\"qr\", \"--help\"]",
            "command = [\"qr\", \"--help\"]\n\n[archive]\nlevel = 5",
            15,
            vec!["`archive.level`", "zstd only"],
        ),
    ] {
        assert!(GOOD.contains(from), "{from}");
        let (msg, path, _d) = load_err(&GOOD.replace(from, to));
        assert_at(&msg, &path, line, &needles);
    }
}

#[test]
fn build_and_prune_values() {
    let extra = r#"
[build]
system_packages = ["libyaml-dev", "Bad;pkg"]
"#;
    let (msg, path, _d) = load_err(&format!("{GOOD}{extra}"));
    assert_at(&msg, &path, 15, &["`build.system_packages`", "Bad;pkg"]);

    // Per family: names are checked by the family's rules, at their line;
    // a family hermetic does not know is named.
    let extra = "\n[build]\nsystem_packages = { deb = [\"libyaml-dev\"], rpm = [\"libyaml-devel\", \"a b\"] }\n";
    let (msg, path, _d) = load_err(&format!("{GOOD}{extra}"));
    assert_at(
        &msg,
        &path,
        15,
        &["`build.system_packages.rpm`", "`a b`", "RPM"],
    );
    let extra = "\n[build]\nsystem_packages = { deb = [\"libyaml-dev\"], apk = [\"yaml-dev\"] }\n";
    let (msg, path, _d) = load_err(&format!("{GOOD}{extra}"));
    assert_at(&msg, &path, 15, &["apk", "deb", "rpm"]);
    let extra = "\n[build]\nsystem_packages = { deb = [\"Libyaml\"] }\n";
    let (msg, path, _d) = load_err(&format!("{GOOD}{extra}"));
    assert_at(&msg, &path, 15, &["`build.system_packages`", "Debian"]);
    let extra = "\n[build]\nsystem_packages = \"libyaml-dev\"\n";
    let (msg, path, _d) = load_err(&format!("{GOOD}{extra}"));
    assert_at(
        &msg,
        &path,
        15,
        &["system_packages", "deb = [...], rpm = [...]"],
    );

    let extra = "\n[build]\ncollect = [{ from = \"out/x\", to = \"../../x\" }]\n";
    let (msg, path, _d) = load_err(&format!("{GOOD}{extra}"));
    assert_at(&msg, &path, 15, &["`build.collect.to`"]);

    let extra = "\n[build]\ncollect = [{ from = \"x\", to = \"bin/x\", mode = 7 }]\n";
    let (msg, path, _d) = load_err(&format!("{GOOD}{extra}"));
    assert_at(&msg, &path, 15, &["unknown field `mode`"]);

    let extra = "\n[build]\ncompiler = \"clang\"\n";
    let (msg, path, _d) = load_err(&format!("{GOOD}{extra}"));
    assert_at(
        &msg,
        &path,
        15,
        &["`build.compiler`", "`clang`", "\"distro\""],
    );
    let compiler = |extra: &str| {
        let (_d, path) = dir_with(&format!("{GOOD}{extra}"));
        Recipe::load(&path).unwrap().build.compiler
    };
    use hermetic::recipe::Compiler;
    assert_eq!(compiler(""), Compiler::Builder);
    assert_eq!(
        compiler("\n[build]\ncompiler = \"builder\"\n"),
        Compiler::Builder
    );
    assert_eq!(
        compiler("\n[build]\ncompiler = \"distro\"\n"),
        Compiler::Distro
    );

    let extra = "\n[prune]\nexclude = [\"**/docs\", \"a[\"]\n";
    let (msg, path, _d) = load_err(&format!("{GOOD}{extra}"));
    assert_at(&msg, &path, 15, &["`prune.exclude`", "invalid glob `a[`"]);
}

#[test]
fn nothing_to_install() {
    let recipe = GOOD.replace("requirements = \"requirements.txt\"\n", "");
    let (msg, path, _d) = load_err(&recipe);
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("nothing to install"),
        "{msg}"
    );
}

#[test]
fn version_from_pyproject() {
    let recipe = GOOD.replace("version = \"1.0\"", "version_from = \"pyproject.toml\"");
    let (dir, path) = dir_with(&recipe);
    fs::write(
        dir.path().join("pyproject.toml"),
        "[project]\nname = \"demo\"\nversion = \"2.5.1\"\n",
    )
    .unwrap();
    assert_eq!(Recipe::load(&path).unwrap().version, "2.5.1");
    fs::write(
        dir.path().join("pyproject.toml"),
        "[project]\nname = \"demo\"\ndynamic = [\"version\"]\n",
    )
    .unwrap();
    let msg = Recipe::load(&path).unwrap_err().to_string();
    assert!(
        msg.contains("pyproject.toml") && msg.contains("dynamic"),
        "{msg}"
    );
}

#[test]
fn find_default_recipe() {
    let (dir, path) = dir_with(GOOD);
    assert_eq!(Recipe::find_default(dir.path()).unwrap(), path);
    let empty = tempfile::tempdir().unwrap();
    let err = Recipe::find_default(empty.path()).unwrap_err();
    assert!(matches!(err, RecipeError::NotFound { .. }));
    assert!(err.to_string().contains("hermetic.toml"), "{err}");
}

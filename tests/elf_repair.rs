//! Repair end to end on the host: plan against a directory standing in for
//! the builder's library path, run the generated script (host `patchelf`),
//! then audit the repaired tree and run the program from a moved path.
//! (The same flow inside the builder container is the engine layer's test.)

// Tests fail by panicking: unwrap, expect and panic! are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod elf_fixtures;

use std::path::{Path, PathBuf};
use std::process::Command;

use elf_fixtures::{cc, fix_main, libfix};
use hermetic::elf::ElfError;
use hermetic::elf::audit::audit_path;
use hermetic::elf::policy::Policy;
use hermetic::elf::repair::{LibraryResolver, ResolvedLib, RpathEdit, plan_repair};
use hermetic::elf::search::SearchPath;
use hermetic::elf::tree::Tree;

/// Resolves like ld.so over real directories: the search path, then `system`.
struct DirResolver {
    system: PathBuf,
}

impl LibraryResolver for DirResolver {
    fn resolve(
        &mut self,
        soname: &str,
        search: &SearchPath,
    ) -> Result<Option<ResolvedLib>, ElfError> {
        let system = self.system.to_string_lossy().into_owned();
        for dir in search.dirs().chain([system.as_str()]) {
            let candidate = Path::new(dir).join(soname);
            if let Ok(bytes) = std::fs::read(&candidate) {
                return Ok(Some(ResolvedLib {
                    path_in_builder: candidate.to_string_lossy().into_owned(),
                    bytes,
                }));
            }
        }
        Ok(None)
    }
}

#[test]
fn vendors_a_non_policy_library_and_the_moved_bundle_runs() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("link");
    libfix(&link, "libfix.so");
    // The "builder's" library directory: libfix under its soname, and a
    // second library it depends on, to exercise the closure.
    let system = dir.path().join("system");
    cc(
        &system,
        "int dep_value(void) { return 40; }\n",
        "libdep.so.2",
        &["-shared", "-fPIC", "-Wl,-soname,libdep.so.2"],
    );
    let dep_link = format!("-L{}", system.display());
    std::os::unix::fs::symlink(system.join("libdep.so.2"), system.join("libdep.so")).unwrap();
    cc(
        &system,
        "int dep_value(void);\nint fix_answer(void) { return dep_value() + 2; }\n",
        "libfix.so.1",
        &[
            "-shared",
            "-fPIC",
            "-Wl,-soname,libfix.so.1",
            &dep_link,
            "-ldep",
            "-Wl,-rpath,/opt/gone/lib",
        ],
    );

    let bundle = dir.path().join("bundle");
    fix_main(&bundle, "bin/app", &link, &["-Wl,-rpath,/build/prefix/lib"]);

    let policy = Policy::for_name("2.36").unwrap();
    let before = audit_path(&bundle, "2.36".parse().unwrap()).unwrap();
    assert!(!before.compliant);

    let tree = Tree::scan(&bundle).unwrap();
    let mut resolver = DirResolver {
        system: system.clone(),
    };
    let plan = plan_repair(&tree, policy, "lib", &mut resolver).unwrap();
    plan.ensure_complete().unwrap();
    assert_eq!(plan.vendored.len(), 2, "{plan:#?}");
    let app = plan.edits.iter().find(|e| e.path == "bin/app").unwrap();
    assert_eq!(
        app.rpath,
        Some(RpathEdit::Set {
            value: "$ORIGIN/../lib".into()
        })
    );

    // Same inputs, same plan.
    let again = plan_repair(&Tree::scan(&bundle).unwrap(), policy, "lib", &mut resolver).unwrap();
    assert_eq!(plan, again);

    let script = plan.to_shell_script(&bundle.to_string_lossy());
    let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    assert!(
        out.status.success(),
        "script failed: {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );

    let after = audit_path(&bundle, "2.36".parse().unwrap()).unwrap();
    assert!(after.compliant, "{}", after.render_text());
    for lib in &plan.vendored {
        assert!(bundle.join(&lib.dest).is_file());
        let text = String::from_utf8(
            Command::new("readelf")
                .arg("-d")
                .arg(bundle.join(&lib.dest))
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        assert!(text.contains(&format!("[{}]", lib.new_soname)), "{text}");
        assert!(!text.contains("/opt/gone"), "{text}");
    }

    // Move the bundle and remove the "builder" libraries: it must still run.
    let moved = dir.path().join("elsewhere/deeper/bundle");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&bundle, &moved).unwrap();
    std::fs::remove_dir_all(&system).unwrap();
    std::fs::remove_dir_all(&link).unwrap();
    let status = Command::new(moved.join("bin/app"))
        .env_remove("LD_LIBRARY_PATH")
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

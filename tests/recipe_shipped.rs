//! Every shipped recipe under `recipes/*/hermetic.toml` parses and validates.

// Tests fail by panicking: unwrap, expect and panic! are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use hermetic::recipe::Recipe;

#[test]
fn every_shipped_recipe_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    let mut loaded = Vec::new();
    for entry in fs_err::read_dir(&root).unwrap() {
        let path = entry.unwrap().path().join("hermetic.toml");
        if !path.is_file() {
            continue;
        }
        let recipe = Recipe::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!recipe.smoke.command.is_empty());
        serde_json::to_string(&recipe).unwrap();
        loaded.push(recipe);
    }
    loaded.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = loaded.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["embed-launcher", "greet", "pyyaml-libyaml", "qr"]);

    let greet = &loaded[1];
    assert_eq!(greet.version, "0.3.0", "version_from pyproject.toml");
    let prune = greet.prune.matcher().unwrap();
    assert!(prune.is_excluded("python/runtime/lib/python3.11/site-packages/greet/var/count"));
    assert!(
        !prune.is_excluded("python/runtime/lib/python3.11/site-packages/greet/templates/hello.txt")
    );

    let qr = &loaded[3];
    let reqs = &qr.install.requirements.as_ref().unwrap().entries;
    assert!(
        reqs.iter()
            .any(|r| r.name == "pillow" && r.version == "12.2.0")
    );
}

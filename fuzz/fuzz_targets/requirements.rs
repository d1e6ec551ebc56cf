//! Fuzzes the requirements parser (`recipe::parse_requirements`), which
//! reads the `--require-hashes` files a recipe names.
//!
//! Properties: no panic; errors render; whatever it accepts is what the
//! fetch phase relies on: every requirement pinned to one version with at
//! least one sha256 of 64 lowercase hex digits, names free of whitespace,
//! no project listed twice (after PEP 503 normalisation), and its line
//! number inside the text. Seeds: `fuzz/seeds/requirements`.

#![no_main]

use std::collections::BTreeSet;
use std::path::Path;

use hermetic::recipe::{normalize_project_name, parse_requirements};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The reader takes UTF-8 text (`read_to_string`).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let reqs = match parse_requirements(text, Path::new("requirements.txt")) {
        Ok(reqs) => reqs,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let lines = text.lines().count();
    let mut seen = BTreeSet::new();
    for r in &reqs {
        assert!(!r.name.is_empty() && !r.version.is_empty(), "{r:?}");
        assert!(!r.name.contains(char::is_whitespace), "{r:?}");
        assert!(!r.version.contains(char::is_whitespace), "{r:?}");
        assert!(!r.sha256.is_empty(), "{r:?}");
        for h in &r.sha256 {
            assert!(
                h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                "{r:?}"
            );
        }
        assert!(r.line >= 1 && r.line <= lines, "{r:?} in {lines} lines");
        assert!(seen.insert(normalize_project_name(&r.name)), "{r:?} twice");
    }
});

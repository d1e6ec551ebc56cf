//! Fuzzes the reader of a release's `SHA256SUMS` (`archive::parse_sha256sums`,
//! behind `read_sha256sums`, which `verify --checksums` and the build cache
//! trust no more than its bytes).
//!
//! Properties: no panic; errors render; a list that parses names every file
//! once, and when hermetic could write it (its names are ones `sha256sum -c`
//! reads back), the written text parses back to the same pairs, sorted.
//! Seeds: `fuzz/seeds/sha256sums`.

#![no_main]

use std::path::Path;

use hermetic::archive::{parse_sha256sums, render_sha256sums};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("SHA256SUMS");
    match parse_sha256sums(text, path) {
        Ok(pairs) => {
            let names: std::collections::BTreeSet<&str> =
                pairs.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names.len(), pairs.len(), "a name listed twice was accepted");
            if let Ok(written) = render_sha256sums(&pairs) {
                let again = parse_sha256sums(&written, path).expect("written SHA256SUMS reads");
                let mut sorted = pairs.clone();
                sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                assert_eq!(again, sorted, "SHA256SUMS changed on a round trip");
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});

//! Fuzzes unpacking a hostile archive the way `sbom`, `image`, `verify` and
//! the build do: the input is written to a file and unpacked with
//! `archive::unpack_archive`, which picks the decoder (gzip, zstd, plain tar)
//! from the first bytes, runs `unpack_safe` into a fresh directory and then
//! checks that the compressed stream is intact.
//!
//! Properties checked on every input, whether the unpack succeeds or not:
//! no panic; nothing is created, changed or removed outside the destination
//! (the temporary root holds only the input and `dest` afterwards, and the
//! input is unchanged). After a success: the summary stays within the size
//! limit, and every symlink in the tree resolves inside it.
//! Seeds: `fuzz/seeds/unpack_safe` (see `scripts/fuzz-seeds`).

#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;

/// Total entry bytes allowed: small, so a hostile size cannot fill the disk.
const LIMIT: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let root = tmp.path();
    let input = root.join("in.tar");
    std::fs::write(&input, data).expect("write the input");
    let dest = root.join("dest");

    let result = hermetic::archive::unpack_archive(&input, &dest, LIMIT);
    // Errors must render (entry names are escaped for the terminal).
    if let Err(e) = &result {
        let _ = e.to_string();
    }

    let mut top: Vec<String> = std::fs::read_dir(root)
        .expect("list the root")
        .map(|e| {
            e.expect("a root entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    top.sort();
    assert!(
        top == ["dest", "in.tar"] || top == ["in.tar"],
        "unpack created {top:?} beside its destination"
    );
    let after = std::fs::read(&input).expect("read the input back");
    assert!(after == data, "unpack changed its own input");

    if let Ok(summary) = result {
        assert!(summary.bytes <= LIMIT, "unpacked {} bytes", summary.bytes);
        let real_dest = std::fs::canonicalize(&dest).expect("the destination exists");
        for entry in walkdir::WalkDir::new(&dest).follow_links(false) {
            let entry = entry.expect("walk the unpacked tree");
            if entry.file_type().is_symlink() {
                assert_link_inside(&real_dest, entry.path());
            }
        }
    }
});

/// A symlink under `dest` must resolve inside it: through the kernel when its
/// target exists; when it dangles, step by step from its (real) parent, the
/// kernel resolving every part that exists and `..` applied to what is left.
fn assert_link_inside(real_dest: &Path, link: &Path) {
    if let Ok(real) = std::fs::canonicalize(link) {
        assert!(
            real.starts_with(real_dest),
            "{} resolves to {}, outside the destination",
            link.display(),
            real.display()
        );
        return;
    }
    let target = std::fs::read_link(link).expect("read the link");
    assert!(
        !target.is_absolute(),
        "{} -> {}",
        link.display(),
        target.display()
    );
    let parent = link.parent().expect("a link has a parent");
    let Ok(mut at) = std::fs::canonicalize(parent) else {
        // A parent that does not resolve (a link loop) leads nowhere.
        return;
    };
    for c in target.components() {
        match c {
            Component::ParentDir => {
                at.pop();
            }
            Component::Normal(n) => {
                let next = at.join(n);
                if next.symlink_metadata().is_err() {
                    at = next;
                } else {
                    match std::fs::canonicalize(&next) {
                        Ok(real) => at = real,
                        // Through another dangling link: that one is
                        // checked on its own.
                        Err(_) => return,
                    }
                }
            }
            _ => {}
        }
        assert!(
            at.starts_with(real_dest),
            "dangling {} -> {} climbs out of the destination",
            link.display(),
            target.display()
        );
    }
}

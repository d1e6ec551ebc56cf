//! The bundle: its layout, the metadata hermetic records inside it, and the
//! steps that make a built tree relocatable (launchers, path rewriting,
//! library vendoring).
//!
//! Layout of a bundle named `app`:
//!
//! ```text
//! app/                      launcher scripts at the top (one per entry point)
//! app/bin/                  native programs built by the recipe
//! app/lib/                  vendored shared libraries (hash-suffixed names)
//! app/python/runtime/       the CPython runtime, with site-packages inside
//! app/share/hermetic/       bundle.json (this module's `BundleMeta`)
//! app/share/sbom/           app.cdx.json
//! ```

pub mod launcher;
pub mod meta;
pub mod relocate;

pub use meta::{BundleMeta, FetchedInput, InputKind, NativeFile, OsPackage, VendoredLib};

/// Where the bundle metadata lives, relative to the bundle's top directory.
pub const META_PATH: &str = "share/hermetic/bundle.json";
/// Where the SBOM lives, relative to the bundle's top directory (`{}` = name).
pub const SBOM_DIR: &str = "share/sbom";
/// The runtime's prefix, relative to the bundle's top directory.
pub const RUNTIME_DIR: &str = "python/runtime";
/// Vendored libraries, relative to the bundle's top directory.
pub const LIB_DIR: &str = "lib";

//! The one canonical-JSON writer. Every document hermetic hashes or hands
//! to other machines (bundle.json, the build record, the provenance
//! statement, OCI configs, manifests and indexes) goes through here, so the
//! same value always gives the same bytes: keys sorted (through
//! `serde_json::Value`'s ordered map; oci-spec and our own maps may be
//! `HashMap`s), no floats of our own, and a fixed layout.
//!
//! A value that cannot be serialised is an error naming the document, never
//! a silent `null` in a file that then hashes "fine".

use serde::Serialize;

/// Pretty form: two-space indent and a final newline (documents people read:
/// records, statements, bundle.json).
pub fn canonical_pretty(what: &'static str, doc: &impl Serialize) -> Result<Vec<u8>, JsonError> {
    let value = to_value(what, doc)?;
    let mut out = serde_json::to_vec_pretty(&value).map_err(|source| JsonError { what, source })?;
    out.push(b'\n');
    Ok(out)
}

/// Compact form: no whitespace (blobs whose digest is their identity).
pub fn canonical_compact(what: &'static str, doc: &impl Serialize) -> Result<Vec<u8>, JsonError> {
    let value = to_value(what, doc)?;
    serde_json::to_vec(&value).map_err(|source| JsonError { what, source })
}

fn to_value(what: &'static str, doc: &impl Serialize) -> Result<serde_json::Value, JsonError> {
    serde_json::to_value(doc).map_err(|source| JsonError { what, source })
}

/// A document that could not be written as JSON.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {what} as JSON: {source}")]
pub struct JsonError {
    /// Which document (`the build record`, `an OCI manifest`, …).
    pub what: &'static str,
    /// serde_json's reason.
    #[source]
    pub source: serde_json::Error,
}

impl From<JsonError> for std::io::Error {
    fn from(e: JsonError) -> Self {
        std::io::Error::other(e)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn keys_are_sorted_whatever_the_map() {
        let mut m = HashMap::new();
        for k in ["zeta", "alpha", "mid", "beta"] {
            m.insert(k, 1);
        }
        let compact = canonical_compact("a test map", &m).unwrap();
        assert_eq!(compact, br#"{"alpha":1,"beta":1,"mid":1,"zeta":1}"#);
        let pretty = canonical_pretty("a test map", &m).unwrap();
        assert!(pretty.starts_with(b"{\n  \"alpha\": 1,") && pretty.ends_with(b"}\n"));
    }

    #[test]
    fn an_unserialisable_value_is_an_error_naming_the_document() {
        // Non-string map keys cannot become JSON object keys.
        let mut m = HashMap::new();
        m.insert((1, 2), "x");
        let err = canonical_pretty("the build record", &m).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot write the build record as JSON"),
            "{err}"
        );
    }
}

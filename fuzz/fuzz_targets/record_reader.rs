//! Fuzzes the readers of the documents a release carries and `verify`
//! trusts no more than their bytes: the build record
//! (`verify::parse_record`, behind `load_record`) and the in-toto provenance
//! statement (`verify::parse_statement`, behind `load_statement`). Every
//! input is tried as both.
//!
//! Properties: no panic; errors render; a record that parses writes
//! canonical JSON that parses back to the same record, and the statement
//! made from it does the same; a statement that parses does too, and lists
//! its named files (a statement holding floats may come back with a float
//! a bit off: hermetic never writes one). Seeds: `fuzz/seeds/record_reader`.

#![no_main]

use std::path::Path;

use hermetic::verify::{parse_record, parse_statement};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let record_path = Path::new("demo.build.json");
    let statement_path = Path::new("demo.intoto.json");
    match parse_record(text, record_path) {
        Ok(record) => {
            let bytes = record.to_canonical_json().expect("a record writes");
            let json = std::str::from_utf8(&bytes).expect("JSON is UTF-8");
            let again = parse_record(json, record_path).expect("a written record reads");
            assert_eq!(again, record, "record changed on a round trip");
            let sha = hermetic::archive::sha256_bytes(&bytes);
            let statement = hermetic::provenance::statement(&record, "demo.build.json", &sha);
            round_trip_statement(&statement);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    match parse_statement(text, statement_path) {
        Ok(statement) => round_trip_statement(&statement),
        Err(e) => {
            let _ = e.to_string();
        }
    }
});

fn round_trip_statement(statement: &hermetic::provenance::Statement) {
    let _ = statement.named_files();
    let bytes = statement.to_canonical_json().expect("a statement writes");
    let json = std::str::from_utf8(&bytes).expect("JSON is UTF-8");
    let again =
        parse_statement(json, Path::new("demo.intoto.json")).expect("a written statement reads");
    // A statement holds free JSON (parameters, annotations). hermetic never
    // writes a float there, and serde_json's default float parsing is not
    // exact to the last bit, so a hostile float need not survive unchanged.
    if !has_float(&serde_json::to_value(statement).expect("a statement is JSON")) {
        assert_eq!(&again, statement, "statement changed on a round trip");
    }
}

fn has_float(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(n) => n.is_f64(),
        serde_json::Value::Array(items) => items.iter().any(has_float),
        serde_json::Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

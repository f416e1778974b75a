//! Loads `openapi.yaml` and compiles its component schemas (JSON Schema 2020-12) for the tests.

use serde_json::{json, Value};
use std::path::PathBuf;

pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The OpenAPI document as JSON.
pub fn openapi() -> Value {
    let text = std::fs::read_to_string(crate_dir().join("openapi.yaml")).expect("openapi.yaml");
    serde_yaml::from_str(&text).expect("openapi.yaml is valid YAML")
}

/// Rewrites `#/components/schemas/X` references to `#/$defs/X`.
fn rewrite_refs(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref") {
                if let Some(name) = r.strip_prefix("#/components/schemas/") {
                    *r = format!("#/$defs/{name}");
                }
            }
            map.values_mut().for_each(rewrite_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

/// All component schemas bundled as one JSON Schema document with `$defs`.
pub fn bundle() -> Value {
    let mut defs = openapi()["components"]["schemas"].clone();
    rewrite_refs(&mut defs);
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://discord-realtime-bridge.invalid/contracts/schema.json",
        "title": "Discord realtime bridge payloads, version 1.0",
        "description": "Generated from contracts/openapi.yaml by `BLESS=1 cargo test -p contracts`; do not edit.",
        "$defs": defs,
    })
}

/// A validator for the named component schema.
pub fn validator(name: &str) -> jsonschema::Validator {
    let mut root = bundle();
    assert!(
        root["$defs"].get(name).is_some(),
        "openapi.yaml has no schema {name}"
    );
    root["$ref"] = Value::String(format!("#/$defs/{name}"));
    jsonschema::draft202012::new(&root).unwrap_or_else(|e| panic!("schema {name} compiles: {e}"))
}

/// The schema errors of `instance`, empty when it is valid.
pub fn schema_errors(name: &str, instance: &Value) -> Vec<String> {
    validator(name)
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

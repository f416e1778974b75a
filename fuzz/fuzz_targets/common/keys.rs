//! Shared by the JSON targets: a body the contract accepts may carry no key the contract doesn't
//! know (`additionalProperties: false` in `contracts/openapi.yaml`), so every object key of the
//! input must reappear, at the same place, in what the parsed value serializes to.
//!
//! The walk goes through `RawValue`s and decodes nothing but keys, because values kept raw (an
//! envelope's `d`) may hold what `serde_json::Value` refuses and browsers accept (a `\udc4d`
//! escape without its pair, `1e999`).

use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// Checks that every key of the JSON text `input` is in `output` at the same path. `opaque` names
/// object keys whose values are carried verbatim and not compared.
pub fn input_keys_survive(input: &str, output: &str, opaque: &[&str], path: &str) {
    match input.trim_start().as_bytes().first() {
        Some(b'{') => {
            let i: BTreeMap<String, &RawValue> =
                serde_json::from_str(input).expect("accepted input is an object");
            let o: BTreeMap<String, &RawValue> = serde_json::from_str(output)
                .unwrap_or_else(|e| panic!("{path} is no longer an object: {e}"));
            for (k, iv) in &i {
                let Some(ov) = o.get(k) else {
                    panic!("key {path}.{k} was accepted but is not part of the contract");
                };
                if !opaque.contains(&k.as_str()) {
                    input_keys_survive(iv.get(), ov.get(), opaque, &format!("{path}.{k}"));
                }
            }
        }
        Some(b'[') => {
            let i: Vec<&RawValue> =
                serde_json::from_str(input).expect("accepted input is an array");
            let o: Vec<&RawValue> = serde_json::from_str(output)
                .unwrap_or_else(|e| panic!("{path} is no longer an array: {e}"));
            assert_eq!(i.len(), o.len(), "array {path} changed length");
            for (n, (iv, ov)) in i.iter().zip(&o).enumerate() {
                input_keys_survive(iv.get(), ov.get(), opaque, &format!("{path}[{n}]"));
            }
        }
        _ => {}
    }
}

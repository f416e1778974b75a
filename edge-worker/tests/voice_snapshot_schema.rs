//! `GET /api/voice` answers with `VoiceTracker::snapshot`, which is built as JSON rather than from
//! a contracts type; this keeps it in step with the `VoiceSnapshot` schema in
//! `contracts/openapi.yaml`.

use edge_worker::voice::VoiceTracker;
use serde_json::{json, Value};

fn schema(name: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../contracts/openapi.yaml"
    ))
    .expect("contracts/openapi.yaml");
    let doc: Value = serde_yaml::from_str(&text).expect("valid YAML");
    let mut defs = doc["components"]["schemas"].clone();
    // `#/components/schemas/X` → `#/$defs/X`, so the component schemas form one JSON Schema.
    fn rewrite(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get_mut("$ref") {
                    *r = r.replace("#/components/schemas/", "#/$defs/");
                }
                m.values_mut().for_each(rewrite);
            }
            Value::Array(a) => a.iter_mut().for_each(rewrite),
            _ => {}
        }
    }
    rewrite(&mut defs);
    jsonschema::draft202012::new(&json!({"$defs": defs, "$ref": format!("#/$defs/{name}")}))
        .expect("schema compiles")
}

#[test]
fn snapshots_match_the_documented_schema() {
    let v = schema("VoiceSnapshot");
    let mut t = VoiceTracker::default();
    // Empty, before any GUILD_CREATE.
    let empty = t.snapshot(None);
    assert!(v.is_valid(&empty), "{empty}");

    let guild_create = json!({"id": "1", "voice_states": [
        {"user_id": "5", "channel_id": "100", "self_mute": true, "deaf": false, "mute": false, "self_deaf": false, "self_video": false},
        {"user_id": "6", "channel_id": "200", "self_mute": false, "deaf": false, "mute": false, "self_deaf": false, "self_video": true}
    ]});
    t.feed(
        "GUILD_CREATE",
        None,
        &guild_create.to_string(),
        1_000,
        30_000,
    );
    let leave = json!({"guild_id": "1", "user_id": "6", "channel_id": null});
    t.feed(
        "VOICE_STATE_UPDATE",
        None,
        &leave.to_string(),
        2_000,
        30_000,
    );

    for snap in [
        t.snapshot(None),
        t.snapshot(Some(contracts::Snowflake(100))),
    ] {
        let errors: Vec<String> = v
            .iter_errors(&snap)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{snap}: {errors:?}");
    }
    let all = t.snapshot(None);
    assert_eq!(all["channels"]["100"][0]["user_id"], "5");
    assert_eq!(all["pending_dropouts"][0]["user_id"], "6");
}

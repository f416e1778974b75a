//! Every validation rule gives a field-named error, and the JSON Schema agrees with the Rust
//! validator on each bad body (so a client validating with the schema sees the same verdicts).

mod support;

use contracts::validate::{parse, parse_shape};
use contracts::*;
use serde_json::{json, Value};
use support::schema_errors;

fn check<T: serde::de::DeserializeOwned + contracts::validate::Validate>(
    schema: &str,
    body: Value,
    field: Option<&str>,
    message_has: &str,
) {
    let bytes = serde_json::to_vec(&body).unwrap();
    let err = match parse::<T>(&bytes) {
        Ok(_) => panic!("{schema}: {body} was accepted"),
        Err(e) => e,
    };
    assert_eq!(err.field.as_deref(), field, "{schema}: {body} gave {err}");
    assert!(
        err.message.contains(message_has),
        "{schema}: {body} gave {err:?}, want {message_has:?}"
    );
    assert!(
        !schema_errors(schema, &body).is_empty(),
        "{schema} schema accepts {body}, Rust refuses it"
    );
}

const CH: &str = "1000000000000000010";

#[test]
fn send_message_rules() {
    let ok = json!({"channel_id": CH, "content": "hi", "nonce": "abc"});
    parse::<SendMessage>(ok.to_string().as_bytes()).unwrap();
    assert!(schema_errors("SendMessage", &ok).is_empty());
    let long = "é".repeat(2000);
    parse::<SendMessage>(
        json!({"channel_id": CH, "content": long})
            .to_string()
            .as_bytes(),
    )
    .expect("2000 characters (not bytes) is the limit");

    check::<SendMessage>(
        "SendMessage",
        json!({"content": "x"}),
        Some("channel_id"),
        "required",
    );
    check::<SendMessage>(
        "SendMessage",
        json!({"channel_id": CH}),
        Some("content"),
        "required",
    );
    check::<SendMessage>(
        "SendMessage",
        json!({"channel_id": CH, "content": ""}),
        Some("content"),
        "empty",
    );
    check::<SendMessage>(
        "SendMessage",
        json!({"channel_id": CH, "content": "  \n"}),
        Some("content"),
        "whitespace",
    );
    check::<SendMessage>(
        "SendMessage",
        json!({"channel_id": CH, "content": "x".repeat(2001)}),
        Some("content"),
        "2001 characters",
    );
    check::<SendMessage>(
        "SendMessage",
        json!({"channel_id": CH, "content": "x", "nonce": "n".repeat(26)}),
        Some("nonce"),
        "1 to 25",
    );
    check::<SendMessage>(
        "SendMessage",
        json!({"channel_id": CH, "content": "x", "nonce": ""}),
        Some("nonce"),
        "1 to 25",
    );
    check::<SendMessage>(
        "SendMessage",
        json!({"channel_id": "12x", "content": "x"}),
        Some("channel_id"),
        "snowflake",
    );
    check::<SendMessage>(
        "SendMessage",
        json!({"channel_id": 123, "content": "x"}),
        Some("channel_id"),
        "snowflake",
    );
    check::<SendMessage>(
        "SendMessage",
        json!({"channel_id": "0", "content": "x"}),
        Some("channel_id"),
        "never 0",
    );
    check::<SendMessage>(
        "SendMessage",
        json!({"channel_id": CH, "content": 5}),
        Some("content"),
        "invalid type",
    );
    check::<SendMessage>(
        "SendMessage",
        json!({"channel_id": CH, "content": "x", "embeds": []}),
        Some("embeds"),
        "unknown field",
    );
    check::<SendMessage>(
        "SendMessage",
        json!({"version": "2.0", "channel_id": CH, "content": "x"}),
        Some("version"),
        "unsupported version",
    );
}

#[test]
fn add_reaction_emoji_forms() {
    for good in [
        "👍",
        "👍🏽",
        "🇫🇷",
        "👨‍👩‍👧‍👦",
        "1️⃣",
        "party_parrot:1000000000000000777",
    ] {
        let body = json!({"channel_id": CH, "message_id": CH, "emoji": good});
        parse::<AddReaction>(body.to_string().as_bytes()).unwrap_or_else(|e| panic!("{good}: {e}"));
        assert!(
            schema_errors("AddReaction", &body).is_empty(),
            "schema refuses {good}"
        );
    }
    for (bad, says) in [
        ("", "empty"),
        ("thumbsup", "unicode emoji"),
        ("x:123", "2 to 32"),
        ("bad name:123", "2 to 32"),
        ("name:abc", "custom emoji id"),
        ("👍 👍", "whitespace"),
        ("👍/../x", "URL"),
        ("😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀", "at most 16"),
    ] {
        check::<AddReaction>(
            "AddReaction",
            json!({"channel_id": CH, "message_id": CH, "emoji": bad}),
            Some("emoji"),
            says,
        );
    }
    check::<AddReaction>(
        "AddReaction",
        json!({"channel_id": CH, "emoji": "👍"}),
        Some("message_id"),
        "required",
    );
}

#[test]
fn typing_start_rules() {
    parse::<TypingStart>(json!({"channel_id": CH}).to_string().as_bytes()).unwrap();
    check::<TypingStart>("TypingStart", json!({}), Some("channel_id"), "required");
    check::<TypingStart>(
        "TypingStart",
        json!({"channel_id": CH, "x": 1}),
        Some("x"),
        "unknown field",
    );
}

const VOICE: &str = "1000000000000000201";

#[test]
fn update_voice_state_rules() {
    let join: UpdateVoiceState =
        parse(json!({"channel_id": VOICE}).to_string().as_bytes()).unwrap();
    assert_eq!(join.channel_id, Some(VOICE.parse().unwrap()));
    assert!(!join.self_mute && !join.self_deaf, "both default to false");
    let leave: UpdateVoiceState = parse(br#"{"channel_id": null, "self_mute": true}"#).unwrap();
    assert_eq!(leave.channel_id, None);
    assert!(schema_errors("UpdateVoiceState", &json!({"channel_id": null})).is_empty());
    // A body that forgot the channel must not make the bot leave voice.
    check::<UpdateVoiceState>(
        "UpdateVoiceState",
        json!({}),
        Some("channel_id"),
        "required",
    );
    check::<UpdateVoiceState>(
        "UpdateVoiceState",
        json!({"channel_id": "voice"}),
        Some("channel_id"),
        "snowflake",
    );
    check::<UpdateVoiceState>(
        "UpdateVoiceState",
        json!({"channel_id": VOICE, "self_mute": "yes"}),
        Some("self_mute"),
        "invalid type",
    );
    check::<UpdateVoiceState>(
        "UpdateVoiceState",
        json!({"channel_id": VOICE, "guild_id": VOICE}),
        Some("guild_id"),
        "unknown field",
    );
}

#[test]
fn update_presence_rules() {
    let ok = json!({"status": "idle", "afk": true, "activities": [{"name": "chess", "type": 0}]});
    let p: UpdatePresence = parse(ok.to_string().as_bytes()).unwrap();
    assert_eq!(p.status, PresenceStatus::Idle);
    assert!(schema_errors("UpdatePresence", &ok).is_empty());
    let bare: UpdatePresence = parse(br#"{"status":"online"}"#).unwrap();
    assert!(!bare.afk && bare.activities.is_none());

    check::<UpdatePresence>("UpdatePresence", json!({}), Some("status"), "required");
    check::<UpdatePresence>(
        "UpdatePresence",
        json!({"status": "away"}),
        Some("status"),
        "unknown variant",
    );
    let six: Vec<Value> = (0..6)
        .map(|i| json!({"name": format!("a{i}"), "type": 0}))
        .collect();
    check::<UpdatePresence>(
        "UpdatePresence",
        json!({"status": "online", "activities": six}),
        Some("activities"),
        "at most 5",
    );
    check::<UpdatePresence>(
        "UpdatePresence",
        json!({"status": "online", "activities": [{"name": "ok", "type": 0}, {"name": "", "type": 0}]}),
        Some("activities[1].name"),
        "1 to 128",
    );
    check::<UpdatePresence>(
        "UpdatePresence",
        json!({"status": "online", "activities": [{"name": "x".repeat(129), "type": 0}]}),
        Some("activities[0].name"),
        "1 to 128",
    );
    check::<UpdatePresence>(
        "UpdatePresence",
        json!({"status": "online", "activities": [{"name": "ok", "type": 6}]}),
        Some("activities[0].type"),
        "0 to 5",
    );
    check::<UpdatePresence>(
        "UpdatePresence",
        json!({"status": "online", "activities": [{"name": "ok", "type": 1, "url": "x"}]}),
        Some("activities[0].url"),
        "unknown field",
    );
}

#[test]
fn request_guild_members_rules() {
    for ok in [
        json!({"query": "", "limit": 0}),
        json!({"query": "al", "limit": 100, "presences": true, "nonce": "n".repeat(32)}),
        json!({"user_ids": [CH], "limit": 1}),
    ] {
        parse::<RequestGuildMembers>(ok.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert!(schema_errors("RequestGuildMembers", &ok).is_empty(), "{ok}");
    }
    check::<RequestGuildMembers>(
        "RequestGuildMembers",
        json!({"limit": 1}),
        Some("query"),
        "one of query or user_ids",
    );
    check::<RequestGuildMembers>(
        "RequestGuildMembers",
        json!({"query": "a", "user_ids": [CH], "limit": 1}),
        Some("user_ids"),
        "cannot be combined",
    );
    check::<RequestGuildMembers>(
        "RequestGuildMembers",
        json!({"query": "a"}),
        Some("limit"),
        "required",
    );
    check::<RequestGuildMembers>(
        "RequestGuildMembers",
        json!({"query": "a", "limit": 101}),
        Some("limit"),
        "0 to 100",
    );
    check::<RequestGuildMembers>(
        "RequestGuildMembers",
        json!({"query": "q".repeat(101), "limit": 1}),
        Some("query"),
        "101 characters",
    );
    check::<RequestGuildMembers>(
        "RequestGuildMembers",
        json!({"user_ids": [], "limit": 1}),
        Some("user_ids"),
        "1 to 100",
    );
    let many: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
    check::<RequestGuildMembers>(
        "RequestGuildMembers",
        json!({"user_ids": many, "limit": 1}),
        Some("user_ids"),
        "1 to 100",
    );
    check::<RequestGuildMembers>(
        "RequestGuildMembers",
        json!({"user_ids": ["0"], "limit": 1}),
        Some("user_ids[0]"),
        "never 0",
    );
    for nonce in ["n".repeat(33), String::new(), "é".into()] {
        check::<RequestGuildMembers>(
            "RequestGuildMembers",
            json!({"query": "a", "limit": 1, "nonce": nonce}),
            Some("nonce"),
            "printable ASCII",
        );
    }
}

#[test]
fn optional_fields_may_be_left_out_but_not_null() {
    check::<UpdatePresence>(
        "UpdatePresence",
        json!({"status": "online", "activities": null}),
        Some("activities"),
        "invalid type: null",
    );
    check::<RequestGuildMembers>(
        "RequestGuildMembers",
        json!({"query": "a", "limit": 1, "nonce": null}),
        Some("nonce"),
        "invalid type: null",
    );
    check::<SendMessage>(
        "SendMessage",
        json!({"channel_id": CH, "content": "x", "nonce": null}),
        Some("nonce"),
        "invalid type: null",
    );
}

#[test]
fn gateway_commands_inside_a_holder_command_name_the_nested_field() {
    let body = json!({"version": "1.0", "command_id": "c", "user": "u", "guild_id": CH,
        "traceparent": "t", "wait_ms": 1,
        "command": {"kind": "update_presence", "body": {"status": "online", "activities": [{"name": "", "type": 0}]}}});
    let err = parse::<HolderCommand>(body.to_string().as_bytes()).unwrap_err();
    assert_eq!(
        err.field.as_deref(),
        Some("command.body.activities[0].name")
    );
    let c = Command::UpdateVoiceState(UpdateVoiceState {
        version: Version,
        channel_id: None,
        self_mute: false,
        self_deaf: false,
    });
    assert_eq!(c.channel_id(), None);
    assert!(c.is_gateway());
    assert_eq!(c.kind(), "update_voice_state");
}

#[test]
fn whole_body_errors_name_no_field() {
    for body in [
        &b"not json"[..],
        b"",
        b"[1,2]",
        b"{\"channel_id\": \"1\", \"content\": \"x\"",
    ] {
        let err = parse::<SendMessage>(body).unwrap_err();
        assert_eq!(
            err.field,
            None,
            "{:?} gave {err:?}",
            String::from_utf8_lossy(body)
        );
    }
    let err = parse::<SendMessage>(b"{not json").unwrap_err();
    assert!(err.message.starts_with("body is not valid JSON"), "{err}");
    let err = parse::<SendMessage>(b"[1,2]").unwrap_err();
    assert_eq!(err.message, "body must be a JSON object");
}

fn batch(envelopes: Value) -> Value {
    json!({"version": "1.0", "holder_id": "h", "epoch": "e", "batch": 1, "envelopes": envelopes})
}

fn env(id: u64) -> Value {
    json!({"version": "1.0", "id": id, "shard": 0, "session_id": "s", "seq": id, "type": "MESSAGE_CREATE",
           "received_at": 1, "d": {"content": "x"}})
}

#[test]
fn ingest_batches_name_nested_fields() {
    parse::<IngestBatch>(batch(json!([env(1), env(2)])).to_string().as_bytes()).unwrap();

    let mut wrong_version = env(2);
    wrong_version["version"] = json!("0.9");
    check::<IngestBatch>(
        "IngestBatch",
        batch(json!([env(1), wrong_version])),
        Some("envelopes[1].version"),
        "unsupported",
    );

    let mut missing = env(1);
    missing.as_object_mut().unwrap().remove("d");
    check::<IngestBatch>(
        "IngestBatch",
        batch(json!([missing])),
        Some("envelopes[0].d"),
        "required",
    );

    let mut bad_guild = env(1);
    bad_guild["guild_id"] = json!("guild");
    check::<IngestBatch>(
        "IngestBatch",
        batch(json!([bad_guild])),
        Some("envelopes[0].guild_id"),
        "snowflake",
    );

    let mut no_epoch = batch(json!([]));
    no_epoch.as_object_mut().unwrap().remove("epoch");
    check::<IngestBatch>("IngestBatch", no_epoch, Some("epoch"), "required");

    // Out-of-order ids are refused by Rust; the schema cannot express order, so check Rust only.
    let err =
        parse::<IngestBatch>(batch(json!([env(2), env(2)])).to_string().as_bytes()).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("envelopes[1].id"));
}

#[test]
fn envelope_d_is_kept_byte_for_byte() {
    // Odd spacing, key order, escapes and number forms must survive parse → serialize untouched.
    let d = r#"{ "b":1,"a" : [1.0, 2e3, -0],"s":"\u00e9\n" ,"big":123456789012345678901234567890}"#;
    let text = format!(
        r#"{{"version":"1.0","id":1,"shard":0,"session_id":"s","seq":1,"type":"X","received_at":1,"d":{d}}}"#
    );
    let e: Envelope = parse_shape(text.as_bytes()).unwrap();
    assert_eq!(e.d.get(), d);
    let again = serde_json::to_string(&e).unwrap();
    assert!(again.contains(d), "{again}");
}

#[test]
fn error_bodies_carry_the_field() {
    let err = parse::<SendMessage>(br#"{"channel_id":"1","content":""}"#).unwrap_err();
    let body: Value = serde_json::to_value(ErrorBody::from(err)).unwrap();
    assert_eq!(body["version"], "1.0");
    assert_eq!(body["error"]["code"], "invalid_request");
    assert_eq!(body["error"]["field"], "content");
    assert!(schema_errors("ErrorBody", &body).is_empty());
}

//! Code, JSON Schema and OpenAPI cannot drift: example values of every Rust type must validate
//! against the schema of the same name, every example in `openapi.yaml` must validate against its
//! schema and parse into the Rust type, and `schema.json` must be the bundle of `openapi.yaml`.

mod support;

use contracts::validate::{parse_shape, Validate};
use contracts::*;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, value::RawValue, Value};
use support::*;

fn raw(v: Value) -> Box<RawValue> {
    RawValue::from_string(v.to_string()).unwrap()
}

fn sf(v: u64) -> Snowflake {
    Snowflake(v)
}

fn envelope(id: u64) -> Envelope {
    Envelope {
        version: Version,
        id,
        shard: 0,
        session_id: "abc".into(),
        seq: id + 1,
        kind: "MESSAGE_CREATE".into(),
        guild_id: Some(sf(1000000000000000001)),
        channel_id: Some(sf(1000000000000000010)),
        received_at: 1764130000123,
        d: raw(json!({"content": "hi", "nested": {"a": [1, 2.5, null]}})),
    }
}

fn send_message() -> SendMessage {
    SendMessage {
        version: Version,
        channel_id: sf(10),
        content: "hello".into(),
        nonce: Some("n-1".into()),
    }
}

/// One or more example values of every type, by schema name.
fn rust_examples() -> Vec<(&'static str, Value)> {
    fn v<T: Serialize>(t: &T) -> Value {
        serde_json::to_value(t).unwrap()
    }
    let flags = VoiceFlags {
        self_mute: true,
        ..VoiceFlags::default()
    };
    let mut out = vec![
        ("Envelope", v(&envelope(7))),
        (
            "Envelope",
            v(&Envelope {
                guild_id: None,
                channel_id: None,
                ..envelope(8)
            }),
        ),
        (
            "HolderGap",
            v(&HolderGap {
                from_id: 3,
                to_id: 9,
                reason: "buffer full".into(),
                shard: None,
            }),
        ),
        (
            "HolderGap",
            v(&HolderGap {
                from_id: 3,
                to_id: 9,
                reason: "buffer full".into(),
                shard: Some(2),
            }),
        ),
        (
            "IngestAck",
            v(&IngestAck {
                version: Version,
                accepted: 3,
                duplicates: 1,
                last_cursor: Some(9),
                cursor: Some(9),
                ignored: Some(2),
                cursors: [
                    ("1000000000000000001".to_string(), 9),
                    ("bot".to_string(), 4),
                ]
                .into_iter()
                .collect(),
            }),
        ),
        (
            "IngestAck",
            v(&IngestAck {
                version: Version,
                accepted: 0,
                duplicates: 0,
                last_cursor: None,
                cursor: None,
                ignored: None,
                cursors: Default::default(),
            }),
        ),
        (
            "Health",
            v(&Health {
                version: Version,
                status: "ok".into(),
            }),
        ),
        (
            "DispatchEvent",
            v(&DispatchEvent {
                version: Version,
                kind: "TYPING_START".into(),
                guild_id: Some(sf(1)),
                channel_id: None,
                received_at: 5,
                d: raw(json!({"user_id": "2"})),
            }),
        ),
        (
            "StatusEvent",
            v(&StatusEvent {
                version: Version,
                link: LinkState::Down,
                gateway: None,
                last_seen: None,
                guild: Some(GuildAvailability::Removed),
            }),
        ),
        (
            "GapEvent",
            v(&GapEvent {
                version: Version,
                reason: GapReason::SlowClient,
                after: 10,
                before: None,
                missing: None,
            }),
        ),
        (
            "GapEvent",
            v(&GapEvent {
                version: Version,
                reason: GapReason::ReplayWindow,
                after: 1,
                before: Some(50),
                missing: Some(48),
            }),
        ),
        (
            "CommandResultEvent",
            v(&CommandResultEvent {
                version: Version,
                command_id: "c1".into(),
                status: CommandStatus::Failed,
                result: None,
                error: Some(ErrorDetail {
                    code: ErrorCode::DeadlineExceeded,
                    message: "late".into(),
                    field: None,
                }),
                traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            }),
        ),
        (
            "CommandResultEvent",
            v(&CommandResultEvent {
                version: Version,
                command_id: "c2".into(),
                status: CommandStatus::Sent,
                result: Some(raw(json!({"id": "5"}))),
                error: None,
                traceparent: None,
            }),
        ),
        ("VoiceFlags", v(&flags)),
        (
            "CommandResultPost",
            v(&CommandResultPost {
                version: Version,
                guild_id: sf(1),
                user: "u".into(),
                event: CommandResultEvent {
                    version: Version,
                    command_id: "c3".into(),
                    status: CommandStatus::Sent,
                    result: None,
                    error: None,
                    traceparent: None,
                },
            }),
        ),
        ("SendMessage", v(&send_message())),
        (
            "SendMessage",
            v(&SendMessage {
                nonce: None,
                ..send_message()
            }),
        ),
        (
            "AddReaction",
            v(&AddReaction {
                version: Version,
                channel_id: sf(1),
                message_id: sf(2),
                emoji: "👍🏽".into(),
            }),
        ),
        (
            "AddReaction",
            v(&AddReaction {
                version: Version,
                channel_id: sf(1),
                message_id: sf(2),
                emoji: "blob_dance:123".into(),
            }),
        ),
        (
            "TypingStart",
            v(&TypingStart {
                version: Version,
                channel_id: sf(3),
            }),
        ),
        (
            "CommandAnswer",
            v(&CommandAnswer {
                version: Version,
                command_id: "c".into(),
                status: CommandStatus::Queued,
                result: None,
            }),
        ),
        (
            "CommandAnswer",
            v(&CommandAnswer {
                version: Version,
                command_id: "c".into(),
                status: CommandStatus::Sent,
                result: Some(raw(json!({"id": "1"}))),
            }),
        ),
        (
            "ErrorBody",
            v(&ErrorBody::from(ValidationError::field(
                "content", "too long",
            ))),
        ),
        (
            "ErrorBody",
            v(&ErrorBody::new(ErrorCode::QueueFull, "full")),
        ),
        (
            "ErrorDetail",
            v(&ErrorDetail {
                code: ErrorCode::TooLarge,
                message: "big".into(),
                field: Some("body".into()),
            }),
        ),
    ];
    for state in [
        GatewayState::Connecting,
        GatewayState::Ready,
        GatewayState::Reconnecting,
        GatewayState::Stopped,
    ] {
        out.push(("GatewayState", v(&state)));
        out.push((
            "StatusEvent",
            v(&StatusEvent {
                version: Version,
                link: LinkState::Up,
                gateway: Some(state),
                last_seen: Some(9),
                guild: None,
            }),
        ));
    }
    for kind in [
        VoiceEventKind::Join,
        VoiceEventKind::Leave,
        VoiceEventKind::Move,
        VoiceEventKind::Update,
        VoiceEventKind::Dropout,
        VoiceEventKind::Recovered,
    ] {
        out.push((
            "VoiceEvent",
            v(&VoiceEvent {
                version: Version,
                kind,
                guild_id: sf(1),
                user_id: sf(2),
                channel_id: sf(3),
                from_channel_id: (kind == VoiceEventKind::Move).then_some(sf(4)),
                flags: Some(flags),
                at: 100,
            }),
        ));
    }
    for code in [
        ErrorCode::InvalidRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::TooLarge,
        ErrorCode::RateLimited,
        ErrorCode::QueueFull,
        ErrorCode::HolderUnavailable,
        ErrorCode::DeadlineExceeded,
        ErrorCode::DiscordError,
        ErrorCode::Internal,
    ] {
        out.push(("ErrorCode", v(&code)));
    }
    let voice = UpdateVoiceState {
        version: Version,
        channel_id: Some(sf(201)),
        self_mute: false,
        self_deaf: true,
    };
    let presence = UpdatePresence {
        version: Version,
        status: PresenceStatus::Dnd,
        afk: false,
        activities: Some(vec![Activity {
            name: "chess".into(),
            kind: 0,
        }]),
    };
    let members = RequestGuildMembers {
        version: Version,
        query: Some("al".into()),
        user_ids: None,
        limit: 10,
        presences: None,
        nonce: Some("n-1".into()),
    };
    out.extend([
        ("UpdateVoiceState", v(&voice)),
        (
            "UpdateVoiceState",
            v(&UpdateVoiceState {
                channel_id: None,
                ..voice.clone()
            }),
        ),
        ("UpdatePresence", v(&presence)),
        (
            "UpdatePresence",
            v(&UpdatePresence {
                status: PresenceStatus::Invisible,
                afk: true,
                activities: None,
                ..presence.clone()
            }),
        ),
        (
            "Activity",
            v(&Activity {
                name: "x".repeat(128),
                kind: 5,
            }),
        ),
        ("RequestGuildMembers", v(&members)),
        (
            "RequestGuildMembers",
            v(&RequestGuildMembers {
                query: None,
                user_ids: Some(vec![sf(1), sf(2)]),
                limit: 0,
                presences: Some(true),
                nonce: None,
                ..members.clone()
            }),
        ),
    ]);
    let commands = [
        Command::UpdateVoiceState(voice),
        Command::UpdatePresence(presence),
        Command::RequestGuildMembers(members),
        Command::SendMessage(send_message()),
        Command::AddReaction(AddReaction {
            version: Version,
            channel_id: sf(1),
            message_id: sf(2),
            emoji: "🎉".into(),
        }),
        Command::TypingStart(TypingStart {
            version: Version,
            channel_id: sf(1),
        }),
    ];
    for command in commands {
        out.push(("Command", v(&command)));
        out.push((
            "HolderCommand",
            v(&HolderCommand {
                version: Version,
                command_id: "c".into(),
                user: "user-1".into(),
                guild_id: sf(1),
                traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
                wait_ms: 2000,
                command,
            }),
        ));
    }
    out.push((
        "ShardState",
        v(&ShardState {
            shard: 3,
            count: 4,
            state: GatewayState::Connecting,
        }),
    ));
    out.push((
        "IngestBatch",
        v(&IngestBatch {
            version: Version,
            holder_id: "h".into(),
            epoch: "e".into(),
            batch: 1,
            envelopes: vec![envelope(1), envelope(2)],
            gaps: vec![HolderGap {
                from_id: 3,
                to_id: 4,
                reason: "r".into(),
                shard: Some(1),
            }],
            gateway: Some(GatewayState::Ready),
            shards: vec![
                ShardState {
                    shard: 0,
                    count: 2,
                    state: GatewayState::Ready,
                },
                ShardState {
                    shard: 1,
                    count: 2,
                    state: GatewayState::Reconnecting,
                },
            ],
        }),
    ));
    let range = ShardRange {
        first: 0,
        last: 1,
        count: 4,
    };
    out.extend([
        ("ShardRange", v(&range)),
        (
            "RegisterHolder",
            v(&RegisterHolder {
                version: Version,
                holder_id: "holder-a".into(),
                url: "http://127.0.0.1:8790".into(),
                shards: range,
            }),
        ),
        (
            "RegisterAnswer",
            v(&RegisterAnswer {
                version: Version,
                register_every_ms: 10_000,
            }),
        ),
        (
            "IdentifyAsk",
            v(&IdentifyAsk {
                version: Version,
                holder_id: "holder-a".into(),
                shard: 3,
                count: 4,
                max_concurrency: 2,
                identified: false,
            }),
        ),
        (
            "IdentifyAsk",
            v(&IdentifyAsk {
                version: Version,
                holder_id: "holder-a".into(),
                shard: 3,
                count: 4,
                max_concurrency: 2,
                identified: true,
            }),
        ),
        (
            "IdentifyAnswer",
            v(&IdentifyAnswer {
                version: Version,
                granted: true,
                retry_after_ms: None,
            }),
        ),
        (
            "IdentifyAnswer",
            v(&IdentifyAnswer {
                version: Version,
                granted: false,
                retry_after_ms: Some(4200),
            }),
        ),
        (
            "BotRegistry",
            v(&BotRegistry {
                version: Version,
                guilds: vec![RegistryGuild {
                    guild_id: sf(1000000000000000001),
                    availability: GuildAvailability::Available,
                    since: 1764130000123,
                }],
                holders: vec![RegistryHolder {
                    holder_id: "holder-a".into(),
                    url: "http://127.0.0.1:8790".into(),
                    shards: range,
                    registered_at: 1764130000000,
                    last_ingest: Some(1764130001000),
                    alive: true,
                }],
            }),
        ),
        (
            "RegistryHolder",
            v(&RegistryHolder {
                holder_id: "holder-b".into(),
                url: "http://127.0.0.1:8791".into(),
                shards: range,
                registered_at: 1764130000000,
                last_ingest: None,
                alive: false,
            }),
        ),
        (
            "RegistryGuild",
            v(&RegistryGuild {
                guild_id: sf(1000000000000000002),
                availability: GuildAvailability::Removed,
                since: 1764130000123,
            }),
        ),
        (
            "GuildList",
            v(&GuildList {
                version: Version,
                default: Some(sf(1000000000000000001)),
                guilds: vec![
                    ListedGuild {
                        guild_id: sf(1000000000000000001),
                        name: Some("Sim Guild".into()),
                        availability: Some(GuildAvailability::Available),
                    },
                    ListedGuild {
                        guild_id: sf(1000000000001835009),
                        name: None,
                        availability: Some(GuildAvailability::Unavailable),
                    },
                ],
            }),
        ),
        (
            "GuildList",
            v(&GuildList {
                version: Version,
                default: None,
                guilds: vec![],
            }),
        ),
        (
            "ListedGuild",
            v(&ListedGuild {
                guild_id: sf(1000000000000000001),
                name: None,
                availability: None,
            }),
        ),
    ]);
    out
}

#[test]
fn every_rust_type_matches_its_schema() {
    let examples = rust_examples();
    let schemas = openapi()["components"]["schemas"]
        .as_object()
        .unwrap()
        .clone();
    for (name, value) in &examples {
        let errors = schema_errors(name, value);
        assert!(
            errors.is_empty(),
            "{name} example {value} fails its schema: {errors:?}"
        );
        let back = rust_round_trip(name, value).unwrap_or_else(|e| panic!("{name} {value}: {e}"));
        assert_eq!(
            &back, value,
            "{name} does not survive serialize → parse → serialize"
        );
    }
    // Every payload schema has at least one Rust example (the three primitives are covered inside).
    for name in schemas.keys() {
        let covered = examples.iter().any(|(n, _)| n == name)
            || matches!(
                name.as_str(),
                "Version" | "Snowflake" | "UnixMillis" | "CommandStatus"
            )
            // Built by the edge's voice tracker: edge-worker/tests/voice_snapshot_schema.rs.
            || matches!(name.as_str(), "VoiceSnapshot" | "VoiceMember");
        assert!(
            covered,
            "schema {name} has no Rust example: add its type to rust_examples()"
        );
    }
}

/// Parses an example into the Rust type of the named schema and serializes it back.
fn rust_round_trip(name: &str, value: &Value) -> Result<Value, String> {
    fn go<T: DeserializeOwned + Serialize>(value: &Value) -> Result<Value, String> {
        let parsed: T = if value.is_object() {
            parse_shape(&serde_json::to_vec(value).unwrap()).map_err(|e| e.to_string())?
        } else {
            serde_json::from_value(value.clone()).map_err(|e| e.to_string())?
        };
        Ok(serde_json::to_value(parsed).unwrap())
    }
    fn checked<T: DeserializeOwned + Serialize + Validate>(value: &Value) -> Result<Value, String> {
        let bytes = serde_json::to_vec(value).unwrap();
        let parsed: T = contracts::validate::parse(&bytes).map_err(|e| e.to_string())?;
        Ok(serde_json::to_value(parsed).unwrap())
    }
    match name {
        "IngestBatch" => checked::<IngestBatch>(value),
        "IngestAck" => go::<IngestAck>(value),
        "Health" => go::<Health>(value),
        "SendMessage" => checked::<SendMessage>(value),
        "AddReaction" => checked::<AddReaction>(value),
        "TypingStart" => checked::<TypingStart>(value),
        "UpdateVoiceState" => checked::<UpdateVoiceState>(value),
        "UpdatePresence" => checked::<UpdatePresence>(value),
        "RequestGuildMembers" => checked::<RequestGuildMembers>(value),
        "Activity" => go::<Activity>(value),
        "CommandAnswer" => go::<CommandAnswer>(value),
        "ErrorBody" => go::<ErrorBody>(value),
        "ErrorDetail" => go::<ErrorDetail>(value),
        "ErrorCode" => go::<ErrorCode>(value),
        "Envelope" => go::<Envelope>(value),
        "HolderGap" => go::<HolderGap>(value),
        "ShardState" => go::<ShardState>(value),
        "GatewayState" => go::<GatewayState>(value),
        "DispatchEvent" => go::<DispatchEvent>(value),
        "StatusEvent" => go::<StatusEvent>(value),
        "GapEvent" => go::<GapEvent>(value),
        "CommandResultEvent" => go::<CommandResultEvent>(value),
        "VoiceEvent" => go::<VoiceEvent>(value),
        "VoiceFlags" => go::<VoiceFlags>(value),
        "Command" => checked::<Command>(value),
        "HolderCommand" => checked::<HolderCommand>(value),
        "CommandResultPost" => go::<CommandResultPost>(value),
        "ShardRange" => go::<ShardRange>(value),
        "RegisterHolder" => checked::<RegisterHolder>(value),
        "RegisterAnswer" => go::<RegisterAnswer>(value),
        "IdentifyAsk" => checked::<IdentifyAsk>(value),
        "IdentifyAnswer" => go::<IdentifyAnswer>(value),
        "BotRegistry" => go::<BotRegistry>(value),
        "RegistryGuild" => go::<RegistryGuild>(value),
        "RegistryHolder" => go::<RegistryHolder>(value),
        "GuildList" => go::<GuildList>(value),
        "ListedGuild" => go::<ListedGuild>(value),
        other => Err(format!("no Rust type mapped for schema {other}")),
    }
}

/// Every (schema name, example) in the OpenAPI document's request bodies and responses.
fn openapi_examples(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = vec![];
    let resolve = |v: &Value| -> Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let path = r.trim_start_matches("#/").split('/').collect::<Vec<_>>();
                path.iter().fold(doc.clone(), |acc, k| acc[*k].clone())
            }
            None => v.clone(),
        }
    };
    let mut collect = |place: String, media: &Value| {
        let Some(r) = media["schema"]["$ref"].as_str() else {
            return;
        };
        let name = r.rsplit('/').next().unwrap().to_string();
        if let Some(examples) = media["examples"].as_object() {
            for (ex, body) in examples {
                out.push((
                    format!("{place} example {ex}"),
                    name.clone(),
                    body["value"].clone(),
                ));
            }
        }
    };
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if let Some(media) = op["requestBody"]["content"].get("application/json") {
                collect(format!("{method} {path} request"), media);
            }
            for (status, resp) in op["responses"].as_object().into_iter().flatten() {
                let resp = resolve(resp);
                if let Some(media) = resp["content"].get("application/json") {
                    collect(format!("{method} {path} {status}"), media);
                }
            }
        }
    }
    out
}

#[test]
fn every_openapi_example_validates_and_parses() {
    let doc = openapi();
    let examples = openapi_examples(&doc);
    assert!(
        examples.len() >= 15,
        "expected examples on every route, found {}",
        examples.len()
    );
    for (place, name, value) in examples {
        let errors = schema_errors(&name, &value);
        assert!(
            errors.is_empty(),
            "{place}: fails schema {name}: {errors:?}"
        );
        let back = rust_round_trip(&name, &value)
            .unwrap_or_else(|e| panic!("{place}: Rust refuses it: {e}"));
        // Round trip: the same JSON, except that an omitted request `version` comes back as "1.0".
        let mut expected = value.clone();
        if expected.get("version").is_none() {
            expected["version"] = json!("1.0");
        }
        assert_eq!(back, expected, "{place}: Rust round trip changed it");
    }
}

#[test]
fn every_edge_route_is_documented() {
    let doc = openapi();
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/healthz",
        "/metrics",
        "/link/ingest",
        "/api/stream",
        "/api/actions/send-message",
        "/api/actions/add-reaction",
        "/api/actions/typing-start",
        "/api/actions/update-voice-state",
        "/api/actions/update-presence",
        "/api/actions/request-guild-members",
        "/api/voice",
        "/api/internal/events",
        "/api/dev/session",
        "/link/command-result",
        "/link/disconnect-clients",
        "/link/register",
        "/link/identify",
        "/api/bot/stream",
        "/api/bot/registry",
        "/api/guilds",
    ] {
        assert!(paths.contains_key(route), "openapi.yaml lacks {route}");
    }
}

#[test]
fn schema_json_is_the_bundle_of_openapi() {
    let path = crate_dir().join("schema.json");
    let fresh = serde_json::to_string_pretty(&bundle()).unwrap() + "\n";
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == fresh,
        "contracts/schema.json is out of date with openapi.yaml: run `BLESS=1 cargo test -p contracts`"
    );
}

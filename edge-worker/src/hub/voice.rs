//! Voice in the hub: the [`VoiceTracker`] fed from ingested GUILD_CREATE / VOICE_STATE_UPDATE
//! dispatches, persisted in SQLite (table `voice`) in the same synchronous section as the events
//! it caused, the Durable Object alarm that fires drop-outs, `GET /api/voice`, and the
//! deprecated `/api/internal/events` WebSocket (Durable Object WebSockets with hibernation).
//!
//! Voice events are ordinary stored events (cursor, replay, `?channels=` by their channel),
//! appended right after the dispatch that caused them; drop-outs are appended by the alarm.

use super::{json, now_ms, Hub};
use crate::event::EdgeEvent;
use crate::voice::{self, VoiceConfig, VoiceTracker};
use contracts::{ErrorCode, Snowflake, VoiceEvent};
use serde::Deserialize;
use std::cell::RefCell;
use std::rc::Rc;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::{spawn_local, JsFuture};
use worker::worker_sys::{DurableObjectState, DurableObjectStorage, WebSocketRequestResponsePair};
use worker::*;

/// The successor of the deprecated WebSocket, for its `Link` header.
const SUCCESSOR: &str = "</api/stream>; rel=\"successor-version\"";

#[derive(Deserialize)]
struct Value {
    value: String,
}

pub(crate) struct Voice {
    pub(crate) config: VoiceConfig,
    tracker: VoiceTracker,
    /// The hub's guild (as the Worker named it): other guilds' voice is ignored.
    guild: Option<Snowflake>,
    sql: SqlStorage,
    storage: DurableObjectStorage,
    state: DurableObjectState,
    /// The alarm time this object last asked for (None: none, or not known since start).
    alarm_at: Option<u64>,
    /// The tracker changed since it was last written.
    dirty: bool,
}

impl Voice {
    pub(crate) fn open(
        state: &State,
        env: &Env,
        guild: Option<Snowflake>,
    ) -> std::result::Result<Voice, String> {
        let config = VoiceConfig::from_lookup(|k| env.var(k).ok().map(|v| v.to_string()))
            .map_err(|e| e.to_string())?;
        let sql = state.storage().sql();
        let storage: DurableObjectStorage =
            JsValue::from(state.storage().as_raw()).unchecked_into();
        let load = || -> Result<VoiceTracker> {
            sql.exec(
                "CREATE TABLE IF NOT EXISTS voice (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                None,
            )?;
            let rows: Vec<Value> = sql
                .exec("SELECT value FROM voice WHERE key = 'tracker'", None)?
                .to_array()?;
            Ok(rows
                .into_iter()
                .next()
                .and_then(|r| serde_json::from_str(&r.value).ok())
                .unwrap_or_default())
        };
        let tracker = load().map_err(|e| format!("storage: {e}"))?;
        let mut v = Voice {
            config,
            tracker,
            guild,
            sql,
            storage,
            state: JsValue::from(state.as_raw()).unchecked_into(),
            alarm_at: None,
            dirty: false,
        };
        // A pending drop-out from before a restart: schedule its alarm again. Deleting first
        // makes the set a change even if the runtime thinks that alarm is stored already
        // (defensive: once, across a local `wrangler dev` restart, a pending drop-out never
        // fired; not reproduced since). At worst the alarm runs once more and finds nothing.
        if v.tracker.next_due().is_some() {
            if let Ok(p) = v.storage.delete_alarm(js_sys::Object::new()) {
                spawn_local(async move {
                    let _ = JsFuture::from(p).await;
                });
            }
        }
        v.arm();
        Ok(v)
    }

    pub(crate) fn set_guild(&mut self, guild: Snowflake) {
        self.guild = Some(guild);
    }

    /// Closes every legacy WebSocket (the bot left the guild).
    pub(crate) fn close_sockets(&self) {
        if let Ok(sockets) = self.state.get_websockets() {
            for ws in sockets {
                let _ = ws.close_with_code_and_reason(1000, "the bot left this guild");
            }
        }
    }

    /// Feeds one ingested dispatch; returns the voice events it caused (not yet stored).
    pub(crate) fn feed(&mut self, kind: &str, d: &str, received_at: u64) -> Vec<VoiceEvent> {
        match self
            .tracker
            .feed(kind, self.guild, d, received_at, self.config.grace_ms)
        {
            Some(events) => {
                self.dirty = true;
                events
            }
            None => vec![],
        }
    }

    /// Writes the tracker if it changed and sets the alarm to the next drop-out. Synchronous:
    /// call it in the same section as the append of the events the change caused.
    pub(crate) fn persist(&mut self) -> Result<()> {
        if self.dirty {
            let text = serde_json::to_string(&self.tracker)
                .map_err(|e| Error::RustError(e.to_string()))?;
            self.sql.exec(
                "INSERT INTO voice (key, value) VALUES ('tracker', ?)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                vec![text.into()],
            )?;
            self.dirty = false;
        }
        self.arm();
        Ok(())
    }

    /// Sets (or deletes) the alarm when the next drop-out time changed. The storage call is
    /// made now (so it is part of this section's writes); its promise is only watched.
    fn arm(&mut self) {
        let next = self.tracker.next_due();
        if next == self.alarm_at {
            return;
        }
        let promise = match next {
            Some(at) => self.storage.set_alarm(
                js_sys::Date::new(&JsValue::from_f64(at as f64)),
                js_sys::Object::new(),
            ),
            None => self.storage.delete_alarm(js_sys::Object::new()),
        };
        match promise {
            Ok(p) => {
                self.alarm_at = next;
                spawn_local(async move {
                    if let Err(e) = JsFuture::from(p).await {
                        console_error!("hub: voice alarm: {e:?}");
                    }
                });
            }
            Err(e) => console_error!("hub: voice alarm: {e:?}"),
        }
    }

    /// Sends the old unversioned messages of `events` to every legacy WebSocket.
    pub(crate) fn broadcast(&self, events: &[VoiceEvent]) {
        if events.is_empty() || !self.config.legacy_ws {
            return;
        }
        let sockets = match self.state.get_websockets() {
            Ok(s) => s,
            Err(e) => {
                console_error!("hub: legacy sockets: {e:?}");
                return;
            }
        };
        if sockets.is_empty() {
            return;
        }
        let messages: Vec<String> = events.iter().flat_map(voice::legacy_messages).collect();
        for ws in sockets {
            for m in &messages {
                // A socket that is closing just misses the rest; its client reconnects.
                if ws.send_with_str(m).is_err() {
                    break;
                }
            }
        }
    }
}

impl Hub {
    /// The alarm: stores and publishes the drop-outs that fell due, then re-arms.
    pub(crate) fn voice_alarm(&mut self) -> Result<()> {
        let now = now_ms();
        // The alarm that woke us is spent.
        self.voice.alarm_at = None;
        let due = self.voice.tracker.due_dropouts(now);
        if !due.is_empty() {
            self.voice.dirty = true;
            let mut events: Vec<EdgeEvent> = due.iter().map(voice::edge_event).collect();
            self.append(now, &mut events)?;
            self.voice.persist()?;
            self.trim(now)?;
            self.publish(now, &events);
            self.voice.broadcast(&due);
            console_log!("hub: {} voice drop-out(s)", due.len());
        } else {
            self.voice.persist()?;
        }
        Ok(())
    }
}

/// `GET /api/voice[?channel=ID]`: who is in which voice channel now.
pub(crate) fn snapshot(hub: &Rc<RefCell<Hub>>, req: &Request) -> Result<Response> {
    let url = req.url()?;
    let mut channel = None;
    for (k, v) in crate::filter::pairs(url.query().unwrap_or("")) {
        if k == "channel" {
            match v.trim().parse::<Snowflake>() {
                Ok(c) => channel = Some(c),
                Err(e) => {
                    let (status, body) = crate::router::invalid(contracts::ValidationError::field(
                        "channel",
                        format!("{v:?}: {e}"),
                    ));
                    return json(status, body);
                }
            }
        }
    }
    let body = hub.borrow().voice.tracker.snapshot(channel).to_string();
    json(200, body)
}

/// `GET /api/internal/events`: the deprecated voice WebSocket.
pub(crate) fn legacy(hub: &Rc<RefCell<Hub>>, req: &Request) -> Result<Response> {
    let h = hub.borrow();
    if !h.voice.config.legacy_ws {
        let (_, body) = crate::router::error(
            ErrorCode::NotFound,
            "the legacy voice WebSocket is switched off; use /api/stream",
        );
        let r = json(410, body)?;
        r.headers().set("Link", SUCCESSOR)?;
        return Ok(r);
    }
    let upgrade = req.headers().get("Upgrade")?.unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("websocket") {
        let (_, body) = crate::router::error(
            ErrorCode::InvalidRequest,
            "this is a WebSocket endpoint (Upgrade: websocket); new clients use /api/stream",
        );
        let r = json(426, body)?;
        r.headers().set("Upgrade", "websocket")?;
        return Ok(r);
    }
    // Keep-alives are answered by the runtime without waking a hibernated object.
    if let Ok(ping) = WebSocketRequestResponsePair::new("ping", "pong") {
        let _ = h.voice.state.set_websocket_auto_response(&ping);
    }
    let pair = WebSocketPair::new()?;
    h.voice
        .state
        .accept_websocket(pair.server.as_ref())
        .map_err(|e| Error::RustError(format!("accept websocket: {e:?}")))?;
    let headers = Headers::new();
    headers.set("Deprecation", "true")?;
    headers.set("Link", SUCCESSOR)?;
    Ok(Response::from_websocket(pair.client)?.with_headers(headers))
}

/// Old clients send nothing but keep-alives (normally answered by the auto-response).
pub(crate) fn on_message(ws: &WebSocket, message: &WebSocketIncomingMessage) {
    if let WebSocketIncomingMessage::String(s) = message {
        if s.trim() == "ping" {
            let _ = ws.send_with_str("pong");
        }
    }
}

pub(crate) fn on_close(ws: &WebSocket, code: usize) {
    // 1005/1006 are never sent on the wire; answer a normal close.
    let code = if (1000..=4999).contains(&code) && code != 1005 && code != 1006 {
        code as u16
    } else {
        1000
    };
    let _ = ws.close(Some(code), Some("bye"));
}

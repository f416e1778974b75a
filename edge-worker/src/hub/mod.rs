//! `GuildHub`: the Durable Object that owns one guild's stream. One file per concern:
//!
//! - `store.rs`: SQLite storage (replay window, cursor, dedup marks, link state).
//! - `ingest.rs`: `POST /link/ingest`: dedup, store, then fan out.
//! - `stream.rs`: `GET /api/stream`: replay and hand-over to live, the SSE body.
//! - `pump.rs`: moves each client's queue into its response body (a native stream).
//! - `ticker.rs`: the timer that sends pings and notices a quiet holder link.
//!
//! The Worker entry has already authenticated the request; the hub trusts its caller. Every
//! request from the Worker names the hub's guild (`X-Rt-Guild`, [`crate::routing::GUILD_HEADER`]);
//! the hub stores it (meta `guild`) and never takes its guild from `GUILD_ID`. The same `Hub`
//! also serves the bot-wide record inside the `BotHub` ([`Role::Bot`]: no guild, no voice or
//! channel tracking).
//! All mutable state sits in one `Rc<RefCell<Hub>>`. Handlers borrow it only in synchronous
//! sections (never across an `.await`), which is also what makes replay-then-live atomic.

mod channels;
mod commands;
pub(crate) mod ingest;
mod pump;
mod store;
pub(crate) mod stream;
mod ticker;
mod voice;

use crate::config::Config;
use crate::event::{self, EdgeEvent};
use crate::fanout::ClientSet;
use crate::link::LinkTracker;
use crate::metrics::{Gauges, Metrics};
use crate::router;
use crate::window;
use contracts::{ErrorCode, GuildAvailability, LinkState, Snowflake, StatusEvent};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use store::Store;
use worker::js_sys::Uint8Array;
use worker::*;

/// A chunk of SSE bytes in JavaScript memory, shared by every client that gets it. The `Rc`
/// makes queueing it for another client a reference-count bump on the Rust side rather than a
/// new JavaScript reference, and gives chunks an identity `pump` can compare cheaply.
pub(crate) type Chunk = Rc<Uint8Array>;

pub(crate) fn chunk(bytes: &[u8]) -> Chunk {
    Rc::new(Uint8Array::from(bytes))
}

pub(crate) fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// What a `Hub` holds the stream of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// One guild (`GuildHub`).
    Guild,
    /// The bot-wide record of dispatches without a guild (inside the `BotHub`).
    Bot,
}

/// Dedup marks cached per (epoch, shard); cleared when it grows past this.
const MARKS_CACHED: usize = 256;

pub(crate) struct Hub {
    pub(crate) config: Config,
    role: Role,
    /// The hub's guild, as the Worker named it (stored in meta `guild`).
    guild: Option<Snowflake>,
    store: Store,
    clients: ClientSet<Chunk>,
    pumps: pump::Pumps,
    link: LinkTracker,
    metrics: Metrics,
    /// The newest cursor handed out (mirrors `meta.head`).
    head: u64,
    /// Edge time of the newest stored event; stored times never go backwards.
    last_at: u64,
    last_age_trim: u64,
    /// Cursors below this were deleted by the size limit already.
    trimmed_below: u64,
    /// Dedup marks by (epoch, shard), cached (a holder keeps one epoch for its lifetime).
    high_water: HashMap<(String, u32), Option<u64>>,
    /// When the link tracker was last written (its `last_seen` is saved at most once a second).
    link_saved_at: u64,
    ticker_running: bool,
    /// Voice membership, drop-outs and the legacy WebSocket (`voice.rs`).
    voice: voice::Voice,
    /// The guild's channels, which commands may target (`channels.rs`).
    channels: channels::Channels,
    /// Per-user limit on `/api/actions/*` (`commands.rs`).
    limiter: crate::rate_limit::Limiter,
    command_counters: crate::actions::CommandCounters,
}

impl Hub {
    pub(crate) fn open(state: &State, env: &Env, role: Role) -> std::result::Result<Hub, String> {
        let config = Config::from_lookup(|k| env.var(k).ok().map(|v| v.to_string()))
            .map_err(|e| e.to_string())?;
        let store = Store::open(state.storage().sql()).map_err(|e| format!("storage: {e}"))?;
        let head = store.head().map_err(|e| format!("storage: {e}"))?;
        let link = store.link().map_err(|e| format!("storage: {e}"))?;
        let guild: Option<Snowflake> = store
            .meta("guild")
            .map_err(|e| format!("storage: {e}"))?
            .and_then(|g| g.parse().ok());
        let voice = voice::Voice::open(state, env, guild)?;
        let channels =
            channels::Channels::open(state, guild).map_err(|e| format!("storage: {e}"))?;
        let config_rate = (config.commands.rate_per_sec, config.commands.burst);
        Ok(Hub {
            clients: ClientSet::new(config.client_queue_max),
            pumps: pump::Pumps::default(),
            config,
            role,
            guild,
            store,
            link,
            metrics: Metrics::default(),
            head,
            last_at: 0,
            last_age_trim: 0,
            trimmed_below: 0,
            high_water: HashMap::new(),
            link_saved_at: 0,
            ticker_running: false,
            voice,
            channels,
            limiter: crate::rate_limit::Limiter::new(config_rate.0, config_rate.1),
            command_counters: Default::default(),
        })
    }

    /// Stores `events` in order, giving each the next cursor and the edge time; the head
    /// is persisted with them. Callers publish the returned events after the writes.
    fn append(&mut self, now: u64, events: &mut [EdgeEvent]) -> Result<()> {
        let at = now.max(self.last_at);
        let mut head = self.head;
        for e in events.iter_mut() {
            head += 1;
            e.cursor = head;
            e.at = at;
        }
        self.store.append(events)?;
        self.head = head;
        self.last_at = at;
        Ok(())
    }

    /// Applies the size limit in steps of [`TRIM_STEP`] events (the window holds at least
    /// `REPLAY_MAX_EVENTS`) and the age limit at most once a second.
    fn trim(&mut self, now: u64) -> Result<()> {
        let floor = window::count_floor(self.head, self.config.replay_max_events);
        let by_count = floor >= self.trimmed_below + TRIM_STEP;
        let cutoff = (now.saturating_sub(self.last_age_trim) >= 1_000).then(|| {
            self.last_age_trim = now;
            window::age_cutoff(now, self.config.replay_max_age_ms)
        });
        if by_count || cutoff.is_some() {
            self.store
                .trim(self.head, if by_count { floor } else { 0 }, cutoff)?;
            if by_count {
                self.trimmed_below = floor;
            }
        }
        Ok(())
    }

    /// The dedup mark of (`epoch`, `shard`), from the cache or storage.
    fn high_water(&mut self, epoch: &str, shard: u32) -> Result<Option<u64>> {
        let key = (epoch.to_string(), shard);
        if let Some(hw) = self.high_water.get(&key) {
            return Ok(*hw);
        }
        if self.high_water.len() >= MARKS_CACHED {
            self.high_water.clear();
        }
        let hw = self.store.high_water(epoch, shard)?;
        self.high_water.insert(key, hw);
        Ok(hw)
    }

    fn set_high_water(&mut self, epoch: &str, shard: u32, hw: u64, now: u64) -> Result<()> {
        // A mark of an epoch not yet seen here: time to drop the oldest epochs' marks.
        let new_epoch = !self
            .high_water
            .iter()
            .any(|((e, _), mark)| e == epoch && mark.is_some());
        self.store
            .set_high_water(epoch, shard, hw, now, new_epoch)?;
        self.high_water.insert((epoch.to_string(), shard), Some(hw));
        Ok(())
    }

    /// Takes the guild the Worker named (`X-Rt-Guild`) as this hub's, storing it the first time
    /// (and if it ever differed, which only a hand-made request could cause).
    fn adopt_guild(&mut self, named: Option<&str>) -> Result<()> {
        if self.role != Role::Guild {
            return Ok(());
        }
        let Some(g) = named.and_then(|g| g.parse::<Snowflake>().ok()) else {
            return Ok(());
        };
        if self.guild != Some(g) {
            self.store.set_meta("guild", g.to_string())?;
            self.guild = Some(g);
            self.voice.set_guild(g);
            self.channels.set_guild(g);
        }
        Ok(())
    }

    /// Whether the bot left this guild (GUILD_DELETE): its streams are closed and new ones 404.
    fn removed(&self) -> bool {
        self.link.guild == Some(GuildAvailability::Removed)
    }

    /// The 404 for a guild the bot left.
    fn removed_answer(&self) -> Result<Response> {
        let name = self
            .guild
            .map_or_else(|| "?".to_string(), |g| g.to_string());
        error(
            ErrorCode::NotFound,
            crate::bot::registry::NotServed::Left.message(name),
        )
    }

    /// Ends every open stream (SSE after what is queued, and the legacy WebSockets).
    fn close_streams(&mut self) -> usize {
        let n = self.clients.close_all();
        self.pumps.drive_all();
        self.voice.close_sockets();
        n
    }

    /// Saves the link tracker when what browsers were told changed, and its `last_seen` at
    /// most once a second.
    fn save_link(&mut self, now: u64, changed: bool) -> Result<()> {
        if changed || now.saturating_sub(self.link_saved_at) >= 1_000 {
            self.store.set_link(&self.link)?;
            self.link_saved_at = now;
        }
        Ok(())
    }

    /// Stores and publishes a `status` event.
    fn emit_status(&mut self, now: u64, status: &StatusEvent) -> Result<()> {
        let mut events = vec![status_event(status)];
        self.append(now, &mut events)?;
        self.save_link(now, true)?;
        self.metrics.status_events += 1;
        self.publish(now, &events);
        Ok(())
    }

    fn publish(&mut self, now: u64, events: &[EdgeEvent]) -> crate::fanout::Published {
        let p = self.clients.publish(events, now, chunk);
        self.pumps.drive_all();
        self.metrics.events_out += p.events_out;
        self.metrics.writes += p.writes;
        self.metrics.slow_closed += p.slow_closed;
        self.metrics.dropped += p.dropped;
        if p.slow_closed > 0 {
            console_warn!(
                "hub: closed {} slow client(s), {} event(s) not delivered",
                p.slow_closed,
                p.dropped
            );
        }
        p
    }

    /// Announces a quiet link, if it just went quiet.
    fn check_link(&mut self, now: u64) -> Result<()> {
        if let Some(status) = self.link.on_tick(now, self.config.link_quiet_ms) {
            console_log!(
                "hub: holder link is down (quiet for {} ms)",
                self.config.link_quiet_ms
            );
            self.emit_status(now, &status)?;
        }
        Ok(())
    }

    fn metrics_text(&mut self) -> Result<String> {
        let now = now_ms();
        let gauges = Gauges {
            clients: self.clients.len() as u64,
            head: self.head,
            window_events: self.store.count()?,
            link_up: self.link.state(now, self.config.link_quiet_ms) == LinkState::Up,
            queued_chunks: self.clients.queued() as u64,
            wasm_memory_bytes: wasm_memory_bytes(),
            storage_bytes: self.store.database_size() as u64,
        };
        let mut text = self.metrics.render(&gauges);
        self.command_counters.render(&mut text);
        Ok(text)
    }
}

/// The isolate's wasm linear memory, in bytes.
fn wasm_memory_bytes() -> u64 {
    use worker::wasm_bindgen::JsCast;
    worker::wasm_bindgen::memory()
        .dyn_into::<worker::js_sys::WebAssembly::Memory>()
        .map(|m| {
            m.buffer()
                .dyn_into::<worker::js_sys::ArrayBuffer>()
                .map_or(0, |b| b.byte_length())
        })
        .unwrap_or(0)
        .into()
}

/// The size limit is applied once this many events are beyond it.
const TRIM_STEP: u64 = 64;

/// A stored `status` event (cursor and time are set by [`Hub::append`]).
fn status_event(status: &StatusEvent) -> EdgeEvent {
    EdgeEvent {
        cursor: 0,
        at: 0,
        name: crate::sse::STATUS.into(),
        channel: None,
        data: event::status_data(status),
        user: None,
    }
}

pub(crate) fn json(status: u16, body: String) -> Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    headers.set("Cache-Control", "no-store")?;
    Ok(Response::ok(body)?
        .with_status(status)
        .with_headers(headers))
}

pub(crate) fn error(code: ErrorCode, message: impl Into<String>) -> Result<Response> {
    let (status, body) = router::error(code, message);
    json(status, body)
}

#[durable_object]
pub struct GuildHub {
    hub: std::result::Result<Rc<RefCell<Hub>>, String>,
}

impl DurableObject for GuildHub {
    fn new(state: State, env: Env) -> Self {
        let hub = Hub::open(&state, &env, Role::Guild).map(|h| Rc::new(RefCell::new(h)));
        if let Err(e) = &hub {
            console_error!("hub: cannot start: {e}");
        }
        GuildHub { hub }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let hub = match &self.hub {
            Ok(h) => h.clone(),
            Err(e) => return error(ErrorCode::Internal, format!("edge misconfigured: {e}")),
        };
        let path = req.path();
        let named = req.headers().get(crate::routing::GUILD_HEADER)?;
        if let Err(e) = hub.borrow_mut().adopt_guild(named.as_deref()) {
            console_error!("hub: storing the guild id: {e}");
            return error(
                ErrorCode::Internal,
                "the edge could not complete the request",
            );
        }
        let guarded = matches!(
            path.as_str(),
            "/api/stream" | "/api/voice" | "/api/internal/events" | crate::actions::ADMIT_PATH
        );
        if guarded && hub.borrow().removed() {
            return hub.borrow().removed_answer();
        }
        let result = match (req.method(), path.as_str()) {
            (Method::Get | Method::Head, "/healthz") => {
                let head = hub.borrow().head;
                json(
                    200,
                    format!(
                        r#"{{"version":"{}","status":"ok","cursor":{head}}}"#,
                        contracts::VERSION
                    ),
                )
            }
            (Method::Post, "/link/ingest") => ingest::handle(&hub, req).await,
            (Method::Get, "/api/stream") => stream::handle(&hub, &req),
            (Method::Post, crate::actions::ADMIT_PATH) => commands::admit(&hub, &req),
            (Method::Post, "/link/command-result") => commands::result(&hub, req).await,
            (Method::Get, "/api/voice") => voice::snapshot(&hub, &req),
            (Method::Get, "/api/internal/events") => voice::legacy(&hub, &req),
            (Method::Get, "/metrics") => {
                let text = hub.borrow_mut().metrics_text()?;
                let headers = Headers::new();
                headers.set("Content-Type", "text/plain; version=0.0.4")?;
                Ok(Response::ok(text)?.with_headers(headers))
            }
            (Method::Post, "/link/disconnect-clients") => {
                let closed = {
                    let mut h = hub.borrow_mut();
                    let n = h.clients.close_all();
                    h.pumps.drive_all();
                    n
                };
                json(
                    200,
                    format!(
                        r#"{{"version":"{}","closed":{closed}}}"#,
                        contracts::VERSION
                    ),
                )
            }
            _ => error(ErrorCode::NotFound, format!("no route for {path}")),
        };
        result.or_else(|e| {
            console_error!("hub: {path}: {e}");
            error(
                ErrorCode::Internal,
                "the edge could not complete the request",
            )
        })
    }

    /// Voice drop-outs (`voice.rs`); fires with no other traffic.
    async fn alarm(&self) -> Result<Response> {
        if let Ok(hub) = &self.hub {
            hub.borrow_mut().voice_alarm()?;
        }
        Response::ok("")
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        voice::on_message(&ws, &message);
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        _reason: String,
        _clean: bool,
    ) -> Result<()> {
        voice::on_close(&ws, code);
        Ok(())
    }

    async fn websocket_error(&self, _ws: WebSocket, _error: Error) -> Result<()> {
        Ok(())
    }
}

//! The Worker's routes, matched purely on method and path so the table is unit-tested. Errors
//! are the contract's `ErrorBody` (`{"version":"1.0","error":{code,message,field?}}`).

use contracts::{ErrorBody, ErrorCode};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Metrics,
    Ingest,
    /// Ops: close every open stream (clients reconnect with `Last-Event-ID`), e.g. to rebalance.
    DisconnectClients,
    Stream,
    /// `OPTIONS` on a browser route.
    Preflight,
    /// `POST /api/actions/*`: a browser command, forwarded to the holder.
    Action(crate::actions::Action),
    /// `POST /link/command-result`: the holder reports a queued command's outcome.
    CommandResult,
    /// `GET /api/voice`: voice membership now (read access, like the stream).
    Voice,
    /// `GET /api/internal/events`: the deprecated voice WebSocket (read access; no CORS, a
    /// WebSocket handshake doesn't use it).
    LegacyEvents,
    /// `POST /api/dev/session`: a demo session cookie, only with `DEV_LOGIN=true` (local dev).
    DevSession,
    /// `POST /link/register`: a holder announces its shards and `/commands` URL.
    Register,
    /// `POST /link/identify`: the bot-wide IDENTIFY queue.
    Identify,
    /// `GET /api/bot/stream`: the bot-wide record (admin sessions).
    BotStream,
    /// `GET /api/bot/registry`: the guilds the bot is in and the holders (admin sessions).
    BotRegistry,
    /// `GET /api/guilds`: the guilds a reader may open, with their names (read access).
    Guilds,
}

impl Route {
    /// `/link/*` and `/metrics`: the holder's `LINK_TOKEN`, never a browser session.
    pub fn needs_link_token(self) -> bool {
        matches!(
            self,
            Route::Metrics
                | Route::Ingest
                | Route::DisconnectClients
                | Route::CommandResult
                | Route::Register
                | Route::Identify
        )
    }

    /// Routes for operators' sessions: a JWT whose `scope` contains `admin` (never `PUBLIC_READ`).
    pub fn needs_admin(self) -> bool {
        matches!(self, Route::BotStream | Route::BotRegistry)
    }

    /// Routes a browser calls, which get CORS headers.
    pub fn is_browser(self) -> bool {
        matches!(
            self,
            Route::Stream
                | Route::Preflight
                | Route::Action(_)
                | Route::Voice
                | Route::BotStream
                | Route::BotRegistry
                | Route::Guilds
        )
    }

    /// Routes that need read access (`PUBLIC_READ` or a `read` session).
    pub fn needs_read(self) -> bool {
        matches!(
            self,
            Route::Stream | Route::Voice | Route::LegacyEvents | Route::Guilds
        )
    }

    /// Read routes of one guild's hub, which may name `?guild=`.
    pub fn is_guild_read(self) -> bool {
        self.needs_read() && self != Route::Guilds
    }
}

/// Why no route matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoRoute {
    NotFound,
    /// The path exists; `allow` lists its methods.
    MethodNotAllowed {
        allow: &'static str,
    },
}

const TABLE: &[(&str, &str, Route)] = &[
    ("/healthz", "GET", Route::Healthz),
    ("/metrics", "GET", Route::Metrics),
    ("/link/ingest", "POST", Route::Ingest),
    ("/link/disconnect-clients", "POST", Route::DisconnectClients),
    ("/api/stream", "GET", Route::Stream),
    (
        "/api/actions/send-message",
        "POST",
        Route::Action(crate::actions::Action::SendMessage),
    ),
    (
        "/api/actions/add-reaction",
        "POST",
        Route::Action(crate::actions::Action::AddReaction),
    ),
    (
        "/api/actions/typing-start",
        "POST",
        Route::Action(crate::actions::Action::TypingStart),
    ),
    (
        "/api/actions/update-voice-state",
        "POST",
        Route::Action(crate::actions::Action::UpdateVoiceState),
    ),
    (
        "/api/actions/update-presence",
        "POST",
        Route::Action(crate::actions::Action::UpdatePresence),
    ),
    (
        "/api/actions/request-guild-members",
        "POST",
        Route::Action(crate::actions::Action::RequestGuildMembers),
    ),
    ("/link/command-result", "POST", Route::CommandResult),
    ("/api/voice", "GET", Route::Voice),
    ("/api/internal/events", "GET", Route::LegacyEvents),
    ("/api/dev/session", "POST", Route::DevSession),
    ("/link/register", "POST", Route::Register),
    ("/link/identify", "POST", Route::Identify),
    ("/api/bot/stream", "GET", Route::BotStream),
    ("/api/bot/registry", "GET", Route::BotRegistry),
    ("/api/guilds", "GET", Route::Guilds),
];

pub fn route(method: &str, path: &str) -> Result<Route, NoRoute> {
    let Some(&(_, allowed, r)) = TABLE.iter().find(|(p, _, _)| *p == path) else {
        return Err(NoRoute::NotFound);
    };
    if method == allowed || (method == "HEAD" && allowed == "GET" && r == Route::Healthz) {
        return Ok(r);
    }
    if method == "OPTIONS" && r.is_browser() {
        return Ok(Route::Preflight);
    }
    Err(NoRoute::MethodNotAllowed {
        allow: if r.is_browser() {
            match allowed {
                "GET" => "GET, OPTIONS",
                _ => "POST, OPTIONS",
            }
        } else {
            allowed
        },
    })
}

/// `(status, JSON body)` for an error.
pub fn error(code: ErrorCode, message: impl Into<String>) -> (u16, String) {
    (code.http_status(), ErrorBody::new(code, message).to_json())
}

/// `(status, JSON body)` for a 400 naming a field.
pub fn invalid(e: contracts::ValidationError) -> (u16, String) {
    let body: ErrorBody = e.into();
    (400, body.to_json())
}

pub fn no_route(e: &NoRoute, method: &str, path: &str) -> (u16, String) {
    match e {
        NoRoute::NotFound => error(ErrorCode::NotFound, format!("no route for {path}")),
        NoRoute::MethodNotAllowed { allow } => error(
            ErrorCode::MethodNotAllowed,
            format!("{method} is not allowed on {path}; use {allow}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(route("POST", "/link/ingest"), Ok(Route::Ingest));
        assert_eq!(route("GET", "/api/stream"), Ok(Route::Stream));
        assert_eq!(route("OPTIONS", "/api/stream"), Ok(Route::Preflight));
        assert_eq!(route("GET", "/nope"), Err(NoRoute::NotFound));
        assert_eq!(
            route("GET", "/link/ingest"),
            Err(NoRoute::MethodNotAllowed { allow: "POST" })
        );
        // /link/* never answers a preflight: browsers can't be let in by CORS.
        assert!(route("OPTIONS", "/link/ingest").is_err());
        assert!(Route::Ingest.needs_link_token() && Route::Metrics.needs_link_token());
        assert!(!Route::Stream.needs_link_token());
        use crate::actions::Action;
        assert_eq!(
            route("POST", "/api/actions/send-message"),
            Ok(Route::Action(Action::SendMessage))
        );
        assert_eq!(
            route("OPTIONS", "/api/actions/typing-start"),
            Ok(Route::Preflight)
        );
        assert_eq!(
            route("GET", "/api/actions/add-reaction"),
            Err(NoRoute::MethodNotAllowed {
                allow: "POST, OPTIONS"
            })
        );
        for (path, action) in [
            ("/api/actions/update-voice-state", Action::UpdateVoiceState),
            ("/api/actions/update-presence", Action::UpdatePresence),
            (
                "/api/actions/request-guild-members",
                Action::RequestGuildMembers,
            ),
        ] {
            assert_eq!(route("POST", path), Ok(Route::Action(action)));
            assert_eq!(action.name(), &path["/api/actions/".len()..]);
            assert_eq!(route("OPTIONS", path), Ok(Route::Preflight));
        }
        assert!(Route::CommandResult.needs_link_token());
        assert!(route("OPTIONS", "/link/command-result").is_err());
    }

    #[test]
    fn voice_routes() {
        assert_eq!(route("GET", "/api/voice"), Ok(Route::Voice));
        assert_eq!(route("OPTIONS", "/api/voice"), Ok(Route::Preflight));
        assert_eq!(
            route("GET", "/api/internal/events"),
            Ok(Route::LegacyEvents)
        );
        assert!(Route::Voice.needs_read() && Route::LegacyEvents.needs_read());
        // A WebSocket handshake is not CORS: the legacy socket gets no CORS headers.
        assert!(!Route::LegacyEvents.is_browser());
        assert!(!Route::Voice.needs_link_token() && !Route::LegacyEvents.needs_link_token());
    }

    #[test]
    fn bot_routes() {
        assert_eq!(route("POST", "/link/register"), Ok(Route::Register));
        assert_eq!(route("POST", "/link/identify"), Ok(Route::Identify));
        assert!(Route::Register.needs_link_token() && Route::Identify.needs_link_token());
        assert!(
            route("OPTIONS", "/link/identify").is_err(),
            "no preflight for /link/*"
        );
        assert_eq!(route("GET", "/api/bot/stream"), Ok(Route::BotStream));
        assert_eq!(route("OPTIONS", "/api/bot/registry"), Ok(Route::Preflight));
        assert!(Route::BotStream.needs_admin() && Route::BotRegistry.needs_admin());
        assert!(!Route::Stream.needs_admin());
        assert!(
            !Route::BotStream.needs_read(),
            "admin, not read: PUBLIC_READ never applies"
        );
    }

    #[test]
    fn guild_list_route() {
        assert_eq!(route("GET", "/api/guilds"), Ok(Route::Guilds));
        assert_eq!(route("OPTIONS", "/api/guilds"), Ok(Route::Preflight));
        assert_eq!(
            route("POST", "/api/guilds"),
            Err(NoRoute::MethodNotAllowed {
                allow: "GET, OPTIONS"
            })
        );
        // Read access exactly like the stream (PUBLIC_READ or a `read` session), with CORS.
        let g = Route::Guilds;
        assert!(g.needs_read() && g.is_browser());
        assert!(!g.needs_admin() && !g.needs_link_token());
        assert!(
            !g.is_guild_read(),
            "answered by the BotHub, not a guild's hub"
        );
        assert!(Route::Stream.is_guild_read() && Route::Voice.is_guild_read());
    }

    #[test]
    fn error_bodies_follow_the_contract() {
        let (status, body) = no_route(&NoRoute::NotFound, "GET", "/x");
        assert_eq!(status, 404);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["version"], "1.0");
        assert_eq!(v["error"]["code"], "not_found");
        let (status, _) = no_route(&NoRoute::MethodNotAllowed { allow: "POST" }, "GET", "/x");
        assert_eq!(status, 405);
    }
}

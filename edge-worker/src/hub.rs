//! `GuildHub`: the Durable Object that owns one guild's stream.

use worker::*;

#[durable_object]
pub struct GuildHub {
    #[allow(dead_code)]
    state: State,
    #[allow(dead_code)]
    env: Env,
}

impl DurableObject for GuildHub {
    fn new(state: State, env: Env) -> Self {
        GuildHub { state, env }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        match (req.method(), req.path().as_str()) {
            (Method::Get, "/healthz") => Response::from_json(&serde_json::json!({
                "version": contracts::VERSION,
                "status": "ok",
            })),
            _ => Response::error("not found", 404),
        }
    }
}

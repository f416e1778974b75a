//! The Worker's `fetch` entry point: picks the guild's `GuildHub` and hands it the request.

use worker::*;

/// The Durable Object namespace binding in `wrangler.toml`.
const HUB_BINDING: &str = "GUILD_HUB";

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    console_error_panic_hook::set_once();
    let guild = env
        .var("GUILD_ID")
        .map(|v| v.to_string())
        .unwrap_or_else(|_| "default".into());
    let stub = env
        .durable_object(HUB_BINDING)?
        .id_from_name(&guild)?
        .get_stub()?;
    stub.fetch_with_request(req).await
}

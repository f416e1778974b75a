//! The holder's own HTTP server on `HOLDER_LISTEN`: `GET /healthz` and `GET /metrics` today, and
//! the place the command queue's `POST /commands` joins later. [`app`] builds the router apart from
//! any listener so tests can serve it on port 0.

use crate::{health::Health, metrics::Metrics};
use axum::{
    extract::State,
    http::{header, StatusCode},
    response::IntoResponse,
    routing::get,
    Json, Router,
};
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    match s.health.check() {
        Ok(()) => (
            StatusCode::OK,
            Json(serde_json::json!({"version": "1.0", "status": "ok"})),
        ),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"version": "1.0", "status": "unavailable", "reason": reason})),
        ),
    }
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn healthz_needs_both_the_session_and_the_link() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let state = AppState {
            metrics: Arc::new(Metrics::new()),
            health: Arc::new(Health::default()),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = app(state.clone());
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        let client = reqwest::Client::new();
        let get = |path: &'static str| {
            let client = client.clone();
            async move {
                let r = client
                    .get(format!("http://{addr}{path}"))
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };

        let (status, body) = get("/healthz").await;
        assert_eq!(status, 503);
        assert!(
            body.contains("not ready") && body.contains("edge link"),
            "{body}"
        );
        state.health.set_gateway_ready(true);
        let (status, body) = get("/healthz").await;
        assert_eq!(status, 503);
        assert!(body.contains("edge link is failing"), "{body}");
        state.health.set_link_ok(true);
        assert_eq!(get("/healthz").await.0, 200);

        let (status, body) = get("/metrics").await;
        assert_eq!(status, 200);
        assert!(body.contains("holder_buffer_depth"), "{body}");
        server.abort();
    }
}

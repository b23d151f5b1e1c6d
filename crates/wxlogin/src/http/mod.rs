//! The HTTP API of `API.md`: routers per resource, extractors, middleware, and the OpenAPI document
//! generated from the handlers.

mod auth;
mod avatars;
mod client_ip;
mod extract;
mod forward;
mod gateway;
mod gateway_path;
mod identity_headers;
mod internal;
mod listener;
mod me;
mod metrics;
mod middleware;
mod openapi_doc;
mod ops;
mod origin;
mod wechat;
mod wellknown;

use axum::extract::DefaultBodyLimit;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi as _;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use std::sync::Arc;

pub use client_ip::ClientIp;
pub use gateway::Gateway;
pub(crate) use listener::{Limits, serve};
pub(crate) use metrics::serve_metrics;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "wxlogin", description = "A self-hosted login server for WeChat Mini Programs."),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Log in with WeChat, refresh, log out"),
        (name = "me", description = "The signed-in user"),
        (name = "discovery", description = "For other services: JWKS, discovery, introspection"),
        (name = "operations", description = "Health and readiness"),
        (name = "internal", description = "For backend services: WeChat access tokens, users"),
        (name = "wechat", description = "WeChat session utilities: open data, signatures, the session_key"),
        (name = openapi_doc::TAG, description = "This document, and a page that renders it"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "service",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::login_with_wechat))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::register))
        .routes(routes!(
            forward::verify,
            forward::verify_head,
            forward::verify_post,
            forward::verify_put,
            forward::verify_patch,
            forward::verify_delete,
            forward::verify_options
        ))
        .routes(routes!(me::get_me))
        .routes(routes!(wellknown::jwks))
        .routes(routes!(wellknown::openid_configuration))
        .routes(routes!(wellknown::introspect))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(me::update_me, me::update_me_put))
        .routes(routes!(me::bind_phone))
        .routes(without_body_limit(routes!(me::put_avatar, me::post_avatar)))
        .routes(routes!(avatars::get_avatar))
        .routes(routes!(wechat::decrypt))
        .routes(routes!(wechat::verify_signature))
        .routes(routes!(wechat::refresh_session, wechat::check_session))
        .routes(routes!(internal::get_access_token))
        .routes(routes!(internal::invalidate_access_token))
        .routes(routes!(internal::get_user))
}

/// Lifts the global body limit from a route that applies its own (the avatar upload).
fn without_body_limit(
    (schemas, paths, method_router): utoipa_axum::router::UtoipaMethodRouter<AppState>,
) -> utoipa_axum::router::UtoipaMethodRouter<AppState> {
    (
        schemas,
        paths,
        method_router.layer(DefaultBodyLimit::disable()),
    )
}

/// The OpenAPI 3.1 document of the API, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api().into_openapi();
    openapi_doc::complete(&mut doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// Paths the API does not serve: the gateway's, when a route matches, else 404.
async fn gateway_or_not_found(
    state: AppState,
    gateway: Option<Arc<Gateway>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let forwarded = match &gateway {
        Some(gateway) => gateway::forward(&state, gateway, request).await,
        None => None,
    };
    match forwarded {
        Some(mut response) => {
            response
                .extensions_mut()
                .insert(middleware::GatewayForwarded);
            response
        }
        None => ApiError::not_found().into_response(),
    }
}

/// The whole HTTP surface with its layers, and the built-in gateway when routes are configured.
pub fn router(state: AppState, gateway: Option<Arc<Gateway>>) -> axum::Router {
    let body_limit = state.settings.server.body_limit_bytes;
    let timeout = middleware::Timeout {
        limit: std::time::Duration::from_millis(state.settings.server.request_timeout_ms),
        gateway: gateway.clone(),
    };
    let edge = middleware::Edge {
        metrics: state.metrics.clone(),
        head_limits: middleware::HeadLimits {
            max_header_bytes: state.settings.server.max_header_bytes,
            max_uri_bytes: state.settings.server.max_uri_bytes,
        },
        trusted_proxies: state.settings.server.trusted_proxies.clone().into(),
    };
    let (router, _) = api().split_for_parts();
    router
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", openapi()))
        .fallback(
            move |axum::extract::State(state): axum::extract::State<AppState>,
                  request: axum::extract::Request| {
                gateway_or_not_found(state, gateway.clone(), request)
            },
        )
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            timeout,
            middleware::timeout,
        ))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::from_fn_with_state(
            edge,
            middleware::request_context,
        ))
        .with_state(state)
}

//! `/v1/avatars/{name}`: uploaded avatars, public and immutable (the name is the content hash).

use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::response::{IntoResponse, Response};

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The schema of an image body in the OpenAPI document: a binary string (`Vec<u8>` would be
/// documented as a JSON array of integers).
pub struct ImageBytes;

impl utoipa::PartialSchema for ImageBytes {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl utoipa::ToSchema for ImageBytes {}

/// An uploaded avatar (the `avatar_url` of a profile). Public, cacheable forever.
#[utoipa::path(get, path = "/v1/avatars/{name}", tag = "me",
    params(("name" = String, Path, description = "`<64 hex digits>.<png|jpg|webp>`")),
    responses(
        (status = 200, description = "The image, with `Cache-Control: public, max-age=31536000, immutable`", content(
            (inline(ImageBytes) = "image/png"),
            (inline(ImageBytes) = "image/jpeg"),
            (inline(ImageBytes) = "image/webp"),
        )),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
pub async fn get_avatar(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let (kind, bytes) = crate::services::profile::read_avatar(&state, &name).await?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind.content_type()));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(response)
}

//! What the handlers' annotations do not say in the OpenAPI document: the errors that every
//! operation with a JSON body shares, and the reference itself (`/openapi.json`, `/docs`), which
//! utoipa-swagger-ui serves.

use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder,
};

/// The tag of the reference's own operations.
pub(super) const TAG: &str = "reference";

/// Completes the document generated from the handlers.
pub(super) fn complete(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        for operation in operations(item) {
            document_body_errors(operation);
        }
    }
    document_reference(doc);
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

fn error_response(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

/// A JSON body goes through the global body limit and the content-type check (`AppJson`,
/// `optional_json`): 413 and 415 are possible on every such operation. An operation that documents
/// its own keeps it.
fn document_body_errors(operation: &mut Operation) {
    let takes_json = operation
        .request_body
        .as_ref()
        .is_some_and(|body| body.content.contains_key("application/json"));
    if !takes_json {
        return;
    }
    let responses = &mut operation.responses.responses;
    responses.entry("413".to_owned()).or_insert_with(|| {
        error_response("`payload_too_large`: the body is larger than `server.body_limit_bytes`")
    });
    responses.entry("415".to_owned()).or_insert_with(|| {
        error_response("`unsupported_media_type`: the body is not `Content-Type: application/json`")
    });
}

fn get(id: &str, summary: &str, status: &str, response: Response) -> Operation {
    OperationBuilder::new()
        .tag(TAG)
        .operation_id(Some(id))
        .summary(Some(summary))
        .response(status, response)
        .build()
}

fn document_reference(doc: &mut OpenApi) {
    let string = || ObjectBuilder::new().schema_type(Type::String).build();
    let openapi = ResponseBuilder::new()
        .description("The OpenAPI 3.1 document of this API")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::Object).build()))
                .build(),
        )
        .build();
    doc.paths.add_path_operation(
        "/openapi.json",
        vec![HttpMethod::Get],
        get("openapi", "This document", "200", openapi),
    );
    let page = ResponseBuilder::new()
        .description(
            "The page (Swagger UI, served from the binary: nothing is loaded from elsewhere)",
        )
        .content(
            "text/html",
            ContentBuilder::new().schema(Some(string())).build(),
        )
        .build();
    doc.paths.add_path_operation(
        "/docs/",
        vec![HttpMethod::Get],
        get("docs", "This document, rendered", "200", page),
    );
    let redirect = ResponseBuilder::new()
        .description("To `/docs/`")
        .header(
            "Location",
            HeaderBuilder::new()
                .schema(string())
                .description(Some("`/docs/`"))
                .build(),
        )
        .build();
    doc.paths.add_path_operation(
        "/docs",
        vec![HttpMethod::Get],
        get("docs_redirect", "Redirects to `/docs/`", "303", redirect),
    );
}

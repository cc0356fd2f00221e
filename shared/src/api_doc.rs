//! What every operation of the store's and the hub's OpenAPI documents
//! shares: the error body, and the error responses that the servers'
//! extractors produce before a handler runs (a malformed body or query, a
//! body too large or of the wrong type, a missing or insufficient token).
//! They are added here, in one pass over the document, so no handler's
//! annotation can forget one and the documents say what the servers do
//! (checked by schemathesis in CI: `.ci/api-conformance`).

use serde::Serialize;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder};

/// The error body of every non-2xx JSON response of both servers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: branch on this, not on the message.
    pub code: String,
    /// What went wrong and what to fix, for a person.
    pub message: String,
    /// Structured details of some errors (alternatives, rejected rows, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// Name of the bearer security scheme both documents use.
pub const BEARER: &str = "bearer";

fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

fn add(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| error_response(description));
}

fn standard_responses(op: &mut Operation) {
    let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let has_body = op.request_body.is_some();
    if has_params || has_body {
        add(
            op,
            "400",
            "malformed request (query string, path, header or JSON body)",
        );
    }
    if has_body {
        add(op, "413", "body_too_large");
        add(op, "415", "unsupported_media_type");
        add(
            op,
            "422",
            "the body is JSON but does not match the schema, or a field is invalid",
        );
    }
    let secured = op
        .security
        .as_ref()
        .is_some_and(|s| s.iter().any(|r| *r != Default::default()));
    if secured {
        add(op, "401", "unauthenticated: no valid bearer token");
        add(op, "403", "forbidden: the token's role may not do this");
    }
}

/// Defines the bearer scheme and the [`ErrorBody`] schema, and adds the
/// standard error responses to every operation (an operation's own
/// description of a status wins).
pub fn add_standard_responses(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    for (name, schema) in [
        ("ErrorBody", <ErrorBody as utoipa::PartialSchema>::schema()),
        (
            "ErrorDetail",
            <ErrorDetail as utoipa::PartialSchema>::schema(),
        ),
    ] {
        components.schemas.entry(name.to_owned()).or_insert(schema);
    }
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            standard_responses(op);
        }
    }
}

/// The stable code and the message (Chinese first) of an error for which
/// only the status is known: what axum or a layer refused before any handler
/// built its own error. `detail` (what axum said) is kept for the caller,
/// except on server errors. One table for both servers.
pub fn status_error(status: u16, detail: &str) -> (&'static str, String) {
    let (code, zh, en) = match status {
        400 => (
            "bad_request",
            "请求无效",
            "the request is malformed (query string, path or headers)",
        ),
        401 => ("unauthenticated", "请先登录", "log in first"),
        404 => (
            "not_found",
            "没有这个地址",
            "no such endpoint; see /api/v1/openapi.json",
        ),
        405 => (
            "method_not_allowed",
            "此地址不接受该请求方法",
            "this endpoint does not take that method; see /api/v1/openapi.json",
        ),
        408 => ("timeout", "请求超时", "the request took too long; retry"),
        413 => (
            "body_too_large",
            "请求体过大",
            "request body is larger than this endpoint accepts; send less per request",
        ),
        415 => (
            "unsupported_media_type",
            "请求体类型不受支持",
            "send the body with the Content-Type this endpoint documents",
        ),
        422 => (
            "invalid_field",
            "请求内容无效",
            "the request does not match the schema",
        ),
        s if s >= 500 => (
            "internal",
            "服务器内部错误",
            "the server could not complete the request; retry",
        ),
        _ => ("bad_request", "请求无效", "the request was refused"),
    };
    let message = if detail.is_empty() || status >= 500 {
        format!("{zh}: {en}")
    } else {
        format!("{zh}: {en} ({detail})")
    };
    (code, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
    use utoipa::openapi::security::SecurityRequirement;
    use utoipa::openapi::{PathsBuilder, request_body::RequestBodyBuilder};

    #[test]
    fn secured_operations_with_bodies_document_every_extractor_error() {
        let secured = OperationBuilder::new()
            .request_body(Some(RequestBodyBuilder::new().build()))
            .security(SecurityRequirement::new::<_, _, String>(BEARER, []))
            .response("409", ResponseBuilder::new().description("own").build())
            .build();
        let open = OperationBuilder::new()
            .response("200", ResponseBuilder::new().description("ok").build())
            .build();
        let mut doc = OpenApi::new(
            utoipa::openapi::Info::new("t", "1"),
            PathsBuilder::new()
                .path("/a", PathItem::new(HttpMethod::Post, secured))
                .path("/b", PathItem::new(HttpMethod::Get, open)),
        );
        add_standard_responses(&mut doc);
        let codes = |p: &str, post: bool| -> Vec<String> {
            let item = &doc.paths.paths[p];
            let op = if post { &item.post } else { &item.get };
            op.as_ref()
                .map(|o| o.responses.responses.keys().cloned().collect())
                .unwrap_or_default()
        };
        assert_eq!(
            codes("/a", true),
            ["400", "401", "403", "409", "413", "415", "422"]
        );
        assert_eq!(codes("/b", false), ["200"]);
        let components = doc.components.as_ref().map(|c| c.schemas.len());
        assert_eq!(components, Some(2));
    }
}

//! Event Grid's error responses: `{"error":{"code":"...","message":"..."}}` with the status the
//! reference lists for each condition (docs/eventgrid.md §2.7, §10).
//!
//! Owns [`ApiError`], what every handler returns on failure, and the mapping from the grid's
//! errors. Must never put a key, a token or an event body into a message.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use evgrid_actors::grid::GridError;
use evgrid_actors::metrics::HTTP;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Close the connection after this answer (`Connection: close`): the request's body was
    /// left unread, so the connection cannot carry another request.
    pub close: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            close: false,
        }
    }
    /// The same answer, closing the connection after it.
    pub fn closing(mut self) -> ApiError {
        self.close = true;
        self
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NotFound", message)
    }
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            message,
        )
    }
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            message,
        )
    }
}

impl From<super::schema::ParseError> for ApiError {
    fn from(e: super::schema::ParseError) -> ApiError {
        use super::schema::ParseError;
        match e {
            ParseError::BadRequest(m) => ApiError::bad_request(m),
            ParseError::TooLarge(m) => ApiError::too_large(m),
            ParseError::UnsupportedMediaType(m) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                m,
            ),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HTTP.errors.inc();
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut r = HttpResponse::build(self.status);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // azure-core retries a POST only when the answer carries Retry-After.
            r.insert_header(("Retry-After", "1"));
        }
        if self.close {
            r.force_close();
        }
        r.content_type("application/json; charset=utf-8")
            .body(body.to_string())
    }
}

/// The grid's sentences go into the body unchanged; the variant picks the status and code.
impl From<GridError> for ApiError {
    fn from(e: GridError) -> ApiError {
        match e {
            GridError::NotFound { .. }
            | GridError::NotFoundIn { .. }
            | GridError::NoPendingValidation => {
                ApiError::new(StatusCode::NOT_FOUND, "ResourceNotFound", e.to_string())
            }
            GridError::BadRequest(_) | GridError::Handshake { .. } => {
                ApiError::bad_request(e.to_string())
            }
            GridError::Closed => {
                ApiError::unavailable("The server is shutting down; nothing was stored.")
            }
            GridError::Unavailable(why) => ApiError::unavailable(format!(
                "The store cannot write at the moment ({why}); nothing of this request was applied. Retry later."
            )),
            // Event Grid's "server busy": 503 with Retry-After, so the SDKs retry.
            GridError::Full(why) => ApiError::unavailable(format!(
                "The server is busy: {why}. Nothing of this request was stored; retry later."
            )),
            GridError::Internal(why) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                format!("The change was not stored ({why}); nothing of this request was applied."),
            ),
        }
    }
}

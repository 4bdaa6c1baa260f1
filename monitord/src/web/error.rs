//! [`ApiError`]: why a request on the web listener got no data, mapped to a status and a
//! JSON body in one place. The body names a bad parameter; store details go to the log only.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::store::StoreError;

/// Why a request got no data. The body names the bad parameter; store details only go to
/// the log, never to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{name}: {why}")]
    BadParameter { name: &'static str, why: String },
    #[error("unknown client")]
    UnknownClient,
    #[error("no such path")]
    NotFound,
    #[error("the database cannot be read right now")]
    Store(#[from] StoreError),
    #[error("the database cannot be read right now")]
    Blocking,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadParameter { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnknownClient | ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Store(_) | ApiError::Blocking => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Store(e) = self {
            tracing::warn!("web listener: a read failed: {e}");
        }
        HttpResponse::build(self.status_code())
            .content_type("application/json")
            .body(json!({ "error": self.to_string() }).to_string())
    }
}

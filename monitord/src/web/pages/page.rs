//! What every page shares: its [`Frame`] (templates/base.html), the [`PageError`] that
//! becomes an HTML error page, rendering ([`html`]), and reading the query and the path.

use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use super::assets;
use crate::web::error::ApiError;

/// What every page's frame (templates/base.html) needs.
#[derive(Debug, Clone)]
pub struct Frame {
    pub title: String,
    /// `fleet`, `host`, `alerts`: which navigation link is the current page.
    pub nav: &'static str,
    pub css: &'static str,
    pub js: &'static str,
}

impl Frame {
    pub fn new(title: impl Into<String>, nav: &'static str) -> Frame {
        Frame {
            title: title.into(),
            nav,
            css: assets::STYLE.url(),
            js: assets::SCRIPT.url(),
        }
    }
}

/// Why a page could not be shown: an HTML page with the status, never a store detail.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("There is no client named “{0}” in config.xml.")]
    UnknownClient(String),
    #[error("{0}")]
    BadParameter(String),
    #[error("The database cannot be read right now; try again in a moment.")]
    Unavailable,
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> PageError {
        match e {
            ApiError::BadParameter { name, why } => {
                PageError::BadParameter(format!("{name}: {why}"))
            }
            ApiError::UnknownClient => PageError::UnknownClient(String::new()),
            ApiError::NotFound => PageError::BadParameter("no such page".into()),
            ApiError::Store(e) => {
                tracing::warn!("dashboard: a read failed: {e}");
                PageError::Unavailable
            }
            ApiError::Blocking => PageError::Unavailable,
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    frame: Frame,
    status: u16,
    message: String,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::UnknownClient(_) => StatusCode::NOT_FOUND,
            PageError::BadParameter(_) => StatusCode::BAD_REQUEST,
            PageError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let page = ErrorPage {
            frame: Frame::new(status.canonical_reason().unwrap_or("Error").to_owned(), ""),
            status: status.as_u16(),
            message: self.to_string(),
        };
        HttpResponse::build(status)
            .content_type(ContentType::html())
            .body(page.render().unwrap_or_else(|_| self.to_string()))
    }
}

/// A rendered template as a 200 `text/html` answer. Pages are never cached: they are the
/// fleet's state now.
pub fn html(page: &impl Template) -> Result<HttpResponse, PageError> {
    let body = page.render().map_err(|e| {
        tracing::error!("dashboard: a template failed to render: {e}");
        PageError::Unavailable
    })?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header(("Cache-Control", "no-store"))
        .body(body))
}

/// A client's name as a URL path segment (`/clients/{this}`): unreserved bytes as they are,
/// everything else (`:`, `[`, `]` of `[v6]:port` names) percent-encoded.
pub fn path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string value, percent-encoded.
pub fn query_value(text: &str) -> String {
    path_segment(text)
}

/// The value of `name` in a query, if given.
pub fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

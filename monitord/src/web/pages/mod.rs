//! The dashboard (DESIGN.md, "The web listener"): `/` the fleet ([`fleet`]), `/clients/{name}`
//! a host ([`host`]), `/alerts` ([`alerts`]), server-rendered HTML from askama templates
//! (`monitord/templates/`, compiled and checked with the binary) with SVG charts drawn here
//! ([`chart`]), and the one stylesheet and script they use, built into the binary
//! ([`assets`]). Every page works without JavaScript; the script only adds hover readouts,
//! drag-to-zoom and the fleet table's live refresh, which fetches the same template's
//! fragment (`/?partial=1`) so nothing is rendered two ways.
//!
//! Pages read through the same functions as `/api/v1` ([`super::read`],
//! [`crate::store::history::series`], [`crate::alerts::incidents`]); no SQL here. Nothing
//! from config.xml but names, addresses, tags, intervals and alert rules reaches a page: no
//! secret, no path of the server. Not here: authentication and TLS (the listener's, for
//! every path).

use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, ResponseError, web};
use askama::Template;

use super::api::ApiError;

pub mod alerts;
pub mod assets;
pub mod chart;
pub mod fleet;
pub mod format;
pub mod host;

/// The dashboard's routes, mounted at the listener's root next to the API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").route(web::get().to(fleet::page)))
        .service(web::resource("/clients/{name}").route(web::get().to(host::page)))
        .service(web::resource("/alerts").route(web::get().to(alerts::page)))
        .service(web::resource("/assets/{file}").route(web::get().to(assets::serve)));
}

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

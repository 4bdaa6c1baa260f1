//! The dashboard's stylesheet and script, built into the binary (`include_str!`): nothing is
//! fetched from elsewhere, so the pages work on an air-gapped network.
//!
//! One caching rule for both: pages link them as `/assets/NAME?v=HASH` (the first 16 hex
//! digits of the content's SHA-256), and they are served with `ETag: "HASH"` and
//! `Cache-Control: public, max-age=31536000, immutable` — a browser asks once per version,
//! a new binary's new content gets a new URL, and a revalidation is a 304.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use sha2::{Digest as _, Sha256};

/// One built-in file.
#[derive(Debug)]
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
    hash: LazyLock<String>,
    url: LazyLock<String>,
}

impl Asset {
    /// The version of the content: 16 hex digits of its SHA-256.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// `/assets/NAME?v=HASH`, what pages link.
    pub fn url(&'static self) -> &'static str {
        &self.url
    }
}

fn hash_of(body: &str) -> String {
    hex::encode(&Sha256::digest(body.as_bytes())[..8])
}

pub static STYLE: Asset = Asset {
    name: "style.css",
    content_type: "text/css; charset=utf-8",
    body: include_str!("assets/style.css"),
    hash: LazyLock::new(|| hash_of(STYLE.body)),
    url: LazyLock::new(|| format!("/assets/{}?v={}", STYLE.name, STYLE.hash())),
};

pub static SCRIPT: Asset = Asset {
    name: "app.js",
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("assets/app.js"),
    hash: LazyLock::new(|| hash_of(SCRIPT.body)),
    url: LazyLock::new(|| format!("/assets/{}?v={}", SCRIPT.name, SCRIPT.hash())),
};

/// `GET /assets/{file}`: 200 with the caching headers, 304 when `If-None-Match` names the
/// current version, 404 for anything else.
pub async fn serve(request: HttpRequest, file: web::Path<String>) -> HttpResponse {
    let Some(asset) = [&STYLE, &SCRIPT].into_iter().find(|a| a.name == *file) else {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("no such asset");
    };
    let etag = format!("\"{}\"", asset.hash());
    let matches = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if matches {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"));
    if matches {
        response.finish()
    } else {
        response.content_type(asset.content_type).body(asset.body)
    }
}

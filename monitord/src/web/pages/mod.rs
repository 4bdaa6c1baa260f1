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

use actix_web::web;

pub mod alerts;
pub mod assets;
pub mod chart;
pub mod fleet;
pub mod format;
pub mod host;
pub mod page;

/// The dashboard's routes, mounted at the listener's root next to the API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").route(web::get().to(fleet::page)))
        .service(web::resource("/clients/{name}").route(web::get().to(host::page)))
        .service(web::resource("/alerts").route(web::get().to(alerts::page)))
        .service(web::resource("/assets/{file}").route(web::get().to(assets::serve)));
}

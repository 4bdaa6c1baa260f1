//! The baseline for the ingest benchmark: an actix-web server whose `PUT /v1/samples/{name}`
//! reads the body and answers 200 with a short JSON body, doing nothing else.
//!
//! It runs as a child process of the benchmark (`xtask empty-handler`), so it is measured
//! exactly as monitord is: its own process, the same worker count, the same client. What
//! monitord achieves divided by what this achieves is the share of the HTTP stack's ceiling
//! that opening, validating and committing samples leaves.

use actix_web::{App, HttpResponse, HttpServer, web};

async fn put_sample(_name: web::Path<String>, body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(if body.is_empty() {
            r#"{"status":"empty"}"#
        } else {
            r#"{"status":"stored"}"#
        })
}

/// Serves on a port-0 loopback socket until killed; logs `listening on ADDR` to stderr.
pub fn serve(workers: usize) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(|| {
            App::new()
                .app_data(web::PayloadConfig::new(monitor_core::envelope::MAX_BODY))
                .route("/v1/samples/{name}", web::put().to(put_sample))
        })
        .workers(workers)
        .bind(("127.0.0.1", 0))?;
        for addr in server.addrs() {
            eprintln!("empty handler listening on {addr}");
        }
        server.run().await?;
        anyhow::Ok(())
    })
}

//! `/api/v1`: every endpoint's shape after real samples went through ingest, errors as JSON
//! with 400 naming the parameter and 404 for unknown clients and paths, and nothing of
//! ingest reachable on this listener.

use std::time::Duration;

use serde_json::json;
use testkit::monitord::{sample, sample_path};
use testkit::util;

use super::fleet_with_an_alert;

#[test]
fn clients_top_alerts_and_outbox_answer_in_their_shapes() {
    let mut m = fleet_with_an_alert(r#"listen="127.0.0.1:0""#);
    m.spawn();
    let ts = m.now_ms();
    let response = m.put_sample("web1", &sample("api", 1, ts)).unwrap();
    assert_eq!(response.status, 200, "{}", response.text());

    let clients = m.web_get("/api/v1/clients", &[]).unwrap();
    assert_eq!(clients.status, 200, "{}", clients.text());
    assert_eq!(clients.header("content-type"), Some("application/json"));
    let clients = clients.json();
    let names: Vec<&str> = clients
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web1", "db1"], "config.xml order");
    let web1 = &clients[0];
    assert_eq!(web1["ip"], "127.0.0.1");
    assert_eq!(web1["interval_s"], 10);
    assert_eq!(web1["tags"], json!(["web", "prod"]));
    assert_eq!(web1["state"], "firing");
    assert_eq!(web1["last_ms"], ts);
    let disk = 53_687_091_200.0 / (53_687_091_200.0 + 48_318_382_080.0) * 100.0;
    let latest = &web1["latest"];
    assert_eq!(latest["cpu_percent"], 12.5);
    assert_eq!(latest["memory_percent"], 25.0);
    assert_eq!(latest["swap_percent"], 0.0);
    assert!(
        (latest["disk_percent"].as_f64().unwrap() - disk).abs() < 0.01,
        "{latest}"
    );
    assert_eq!(latest["load1"], 0.5);
    assert_eq!(latest["processes"], 123);
    assert_eq!(latest["uptime_s"], 86_400);
    assert_eq!(web1["alerts"].as_array().unwrap().len(), 1, "{web1}");
    let alert = &web1["alerts"][0];
    assert_eq!(
        (&alert["rule"], &alert["phase"]),
        (&json!("processes"), &json!("firing"))
    );
    assert_eq!(alert["value"], 123.0);
    assert!(
        alert["since_ms"].as_i64().is_some() && alert.get("detail").is_some(),
        "{alert}"
    );
    let db1 = &clients[1];
    assert_eq!(
        (&db1["state"], &db1["last_ms"], &db1["latest"], &db1["tags"]),
        (&json!("never"), &json!(null), &json!(null), &json!([]))
    );

    let top = m.web_get("/api/v1/clients/web1/top", &[]).unwrap();
    assert_eq!(top.status, 200, "{}", top.text());
    let top = top.json();
    assert_eq!(top["top"][0]["name"], "init", "{top}");
    assert!(top["ts"].as_i64().is_some(), "{top}");
    let none = m.web_get("/api/v1/clients/db1/top", &[]).unwrap().json();
    assert_eq!(none, json!({"ts": null, "top": []}));

    let alerts = m.web_get("/api/v1/alerts?since=0", &[]).unwrap();
    assert_eq!(alerts.status, 200);
    let alerts = alerts.json();
    // The processes rule fired on the first sample: one incident, still open.
    let incidents = alerts["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 1, "{alerts}");
    let incident = &incidents[0];
    assert_eq!(
        (
            &incident["client"],
            &incident["rule"],
            &incident["resolved_ms"]
        ),
        (&json!("web1"), &json!("processes"), &json!(null))
    );
    assert_eq!(
        (&incident["value"], &incident["peak"], &incident["limit"]),
        (&json!(123.0), &json!(123.0), &json!(1.0))
    );
    assert_eq!(incident["top"][0]["name"], "init", "{incident}");
    assert!(incident["fired_ms"].as_i64().is_some(), "{incident}");
    let now = alerts["now"].as_array().unwrap();
    assert_eq!(now.len(), 1, "{alerts}");
    assert_eq!(
        (&now[0]["client"], &now[0]["rule"]),
        (&json!("web1"), &json!("processes"))
    );
    for field in ["phase", "since_ms", "value", "detail"] {
        assert!(now[0].get(field).is_some(), "no {field}: {alerts}");
    }

    // The FIRING mail is in the outbox (no SMTP server here: it waits, pending).
    let outbox = util::wait_for(
        Duration::from_secs(20),
        "the FIRING mail in /api/v1/outbox",
        || {
            let rows = m.web_get("/api/v1/outbox", &[]).unwrap().json();
            (rows.as_array().unwrap().len() == 1).then_some(rows)
        },
    );
    let row = &outbox[0];
    assert_eq!(row["client"], "web1");
    assert_eq!(row["rule"], "processes");
    assert_eq!(row["recipient"], "ops@example.com");
    assert!(
        row["subject"].as_str().unwrap().contains("FIRING web1"),
        "{row}"
    );
    assert!(
        ["pending", "sent", "failed"].contains(&row["state"].as_str().unwrap()),
        "{row}"
    );
    for field in ["id", "created_ms", "attempts", "error"] {
        assert!(row.get(field).is_some(), "no {field}: {row}");
    }
    m.terminate();
}

#[test]
fn bad_parameters_unknown_clients_and_paths_are_json_errors() {
    let mut m = fleet_with_an_alert(r#"listen="127.0.0.1:0""#);
    m.spawn();
    let bad = m.web_get("/api/v1/alerts?since=yesterday", &[]).unwrap();
    assert_eq!(bad.status, 400);
    let error = bad.json()["error"].as_str().unwrap().to_owned();
    assert!(error.starts_with("since:"), "{error}");

    let unknown = m.web_get("/api/v1/clients/nope/top", &[]).unwrap();
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json(), json!({"error": "unknown client"}));
    let path = m.web_get("/api/v2/clients", &[]).unwrap();
    assert_eq!(path.status, 404);
    assert!(path.json()["error"].is_string());

    // Read-only and apart from ingest: no sample can be PUT here, no write method answers.
    let body = m.seal("web1", sample("x", 1, m.now_ms()).to_string().as_bytes());
    let put = util::put(m.web_addr(), &sample_path("web1"), body.as_bytes()).unwrap();
    assert_eq!(put.status, 404, "{}", put.text());
    let head = b"DELETE /api/v1/clients HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let delete = util::send_raw(m.web_addr(), head, b"").unwrap();
    assert!([404, 405].contains(&delete.status), "{}", delete.status);
    assert!(m.samples("web1").is_empty());
    // And the ingest listener serves none of the web paths.
    assert_eq!(util::get(m.addr(), "/api/v1/clients").unwrap().status, 404);
    m.terminate();
}

#[test]
fn check_config_refuses_an_open_listener_off_loopback_with_its_line() {
    let m = fleet_with_an_alert(r#"listen="0.0.0.0:8751""#);
    let out = m.command(&["check-config"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config.xml:5: web: `listen` \"0.0.0.0:8751\" is not a loopback address"),
        "{stderr}"
    );
}

#[test]
fn series_reads_buckets_and_incidents_close_with_their_peak() {
    let mut m = fleet_with_an_alert(r#"listen="127.0.0.1:0""#);
    m.spawn();
    // Ten samples a minute apart over the last ten minutes.
    let now = m.now_ms();
    let mut cpus = Vec::new();
    for i in 0..10 {
        let mut s = sample("series", i + 1, now - (10 - i) * 60_000);
        s["cpu_percent"] = (10.0 + i as f64 * 5.0).into();
        s["processes"] = (50 * (i + 1)).into();
        cpus.push(10.0 + i as f64 * 5.0);
        let r = m.put_sample("web1", &s).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let from = now - 11 * 60_000;
    let path = format!("/api/v1/clients/web1/series?from={from}&to={now}&points=5");
    let got = m.web_get(&path, &[]).unwrap();
    assert_eq!(got.status, 200, "{}", got.text());
    let got = got.json();
    assert_eq!(got["tier"], "raw", "{got}");
    assert_eq!(
        (&got["name"], &got["from"], &got["to"]),
        (&json!("web1"), &json!(from), &json!(now))
    );
    let step = got["step_ms"].as_i64().unwrap();
    assert_eq!(step % 10_000, 0, "a multiple of the 10 s interval: {step}");
    let cpu = got["series"]["cpu_percent"].as_array().unwrap();
    assert!(!cpu.is_empty() && cpu.len() <= 5, "{got}");
    // Every sample is in exactly one bucket, with its bucket's avg, min and max.
    let mut seen = 0;
    for bucket in cpu {
        let start = bucket[0].as_i64().unwrap();
        let inside: Vec<f64> = (0..10)
            .filter(|i| {
                let ts = now - (10 - i) * 60_000;
                ts >= start && ts < start + step
            })
            .map(|i| cpus[i as usize])
            .collect();
        seen += inside.len();
        let avg = inside.iter().sum::<f64>() / inside.len() as f64;
        assert!(
            (bucket[1].as_f64().unwrap() - avg).abs() < 0.006,
            "{bucket} vs {inside:?}"
        );
        assert_eq!(
            bucket[2].as_f64().unwrap(),
            inside.iter().cloned().fold(f64::MAX, f64::min)
        );
        assert_eq!(
            bucket[3].as_f64().unwrap(),
            inside.iter().cloned().fold(f64::MIN, f64::max)
        );
    }
    assert_eq!(seen, 10);
    for name in ["memory_percent", "swap_percent", "load1", "processes"] {
        assert!(got["series"][name].is_array(), "no {name}: {got}");
    }
    assert!(
        got["series"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("disk:/")),
        "{got}"
    );

    // Bad parameters name themselves; an unknown client is 404; one never heard from is empty.
    for (query, name) in [
        ("points=0", "points"),
        ("points=9999", "points"),
        ("from=x", "from"),
        ("from=10&to=5", "from"),
    ] {
        let bad = m
            .web_get(&format!("/api/v1/clients/web1/series?{query}"), &[])
            .unwrap();
        assert_eq!(bad.status, 400, "{query}");
        let error = bad.json()["error"].as_str().unwrap().to_owned();
        assert!(error.starts_with(&format!("{name}:")), "{query}: {error}");
    }
    assert_eq!(
        m.web_get("/api/v1/clients/nope/series", &[])
            .unwrap()
            .status,
        404
    );
    let quiet = m.web_get("/api/v1/clients/db1/series", &[]).unwrap().json();
    assert_eq!(quiet["series"], json!({}), "{quiet}");

    // Current samples (the ones above are history, not evaluated): processes 50 fires
    // the rule, 500 is its worst, 1 resolves it; the incident keeps all three facts.
    for (seq, processes) in [(11, 50), (12, 500), (13, 7), (14, 1)] {
        let mut s = sample("series", seq, m.now_ms());
        s["processes"] = processes.into();
        assert_eq!(m.put_sample("web1", &s).unwrap().status, 200);
    }
    let incidents = m.web_get("/api/v1/alerts", &[]).unwrap().json()["incidents"].clone();
    let incident = &incidents[0];
    assert_eq!(incident["value"], 50.0, "{incident}");
    assert_eq!(incident["peak"], 500.0, "{incident}");
    assert!(incident["resolved_ms"].as_i64().is_some(), "{incident}");
    m.terminate();
}

//! TLS on the web listener with a certificate from a throwaway CA: a client that trusts only
//! that CA (curl with `--cacert` and an empty `--capath`) gets the API; one that trusts only
//! the system's roots refuses the certificate; plain HTTP gets nothing. Verification is
//! never switched off.

use std::process::Command;

use testkit::certs::make_certificates;
use testkit::monitord::Monitord;
use testkit::util;

use crate::support::bin;

fn curl(args: &[&str]) -> std::process::Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("run curl (the test command installs it)")
}

#[test]
fn tls_with_a_certificate_the_client_trusts_through_its_ca() {
    let mut m = Monitord::prepare(bin(), &["web1"]);
    let certs = make_certificates(m.dir());
    m.set_web(r#"listen="127.0.0.1:0" cert-file="server.pem" key-file="server.key""#);
    m.spawn();
    assert!(m.stderr().contains("(https, no auth)"), "{}", m.stderr());
    let port = m.web_addr().port();
    let only_ca = util::temp_dir("no-other-cas");

    let url = format!("https://127.0.0.1:{port}/api/v1/clients");
    let ok = curl(&[
        "--cacert",
        certs.ca.to_str().unwrap(),
        "--capath",
        only_ca.path().to_str().unwrap(),
        "-w",
        "\n%{http_code}",
        &url,
    ]);
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let (body, status) = text.rsplit_once('\n').unwrap();
    assert_eq!(status, "200", "{text}");
    let clients: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(clients[0]["name"], "web1", "{text}");

    // The system's roots do not know the throwaway CA.
    let untrusted = curl(&[&url]);
    assert_eq!(untrusted.status.code(), Some(60), "{untrusted:?}");
    // No plain HTTP on a TLS listener.
    let plain = util::get(m.web_addr(), "/api/v1/clients");
    assert!(plain.is_err() || plain.unwrap().status != 200);
    m.terminate();
}

//! The static agent `scripts/build-agent` makes: really static, within its size budget, and it
//! runs. Skipped, saying so, when it has not been built (never under CI, where scripts/test
//! builds it first).

use std::path::PathBuf;
use std::process::Command;

/// Where scripts/build-agent leaves it (the same rule as testkit::agent::binary).
fn static_agent() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("x86_64-unknown-linux-gnu/agent/monitor-agent");
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing under CI: scripts/test must run scripts/build-agent first",
        path.display()
    );
    eprintln!(
        "SKIPPED: {} not built (run scripts/build-agent)",
        path.display()
    );
    None
}

#[test]
fn the_built_agent_is_static_small_and_runs() {
    let Some(agent) = static_agent() else { return };
    let file = Command::new("file").arg("-L").arg(&agent).output();
    if let Ok(out) = file {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("statically linked") || text.contains("static-pie linked"),
            "{text}"
        );
    }
    let ldd = Command::new("ldd").arg(&agent).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&ldd.stdout),
        String::from_utf8_lossy(&ldd.stderr)
    );
    assert!(
        text.contains("not a dynamic executable") || text.contains("statically linked"),
        "ldd: {text}"
    );
    assert!(!text.contains("=>"), "ldd: {text}");

    let size = std::fs::metadata(&agent).unwrap().len();
    eprintln!("static agent: {size} bytes");
    assert!(
        size <= 1_572_864,
        "the static agent grew to {size} bytes (budget 1.5 MiB)"
    );

    let out = Command::new(&agent).arg("--print").output().unwrap();
    assert!(out.status.success());
    monitor_core::Sample::parse(&out.stdout).unwrap();
}

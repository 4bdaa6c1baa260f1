//! The static agent `scripts/build-agent` makes: really static, within its size budget, and it
//! runs. Skipped, saying so, when it has not been built (never under CI, where scripts/test
//! builds it first).

use std::process::Command;

use testkit::util;

#[test]
fn the_built_agent_is_static_small_and_runs() {
    let Some(agent) = testkit::agent::binary_or_skip() else {
        return;
    };
    // Without `file` the ldd check below still runs; the skip of this part is said, not silent.
    if util::have_program("file", "file") {
        let out = Command::new("file").arg("-L").arg(&agent).output().unwrap();
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

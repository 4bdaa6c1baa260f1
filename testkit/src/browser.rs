//! Headless Chromium (Debian's `chromium`), as the dashboard's browser test and
//! `xtask bench history` run it: one way, so what the benchmark times is what the test sees.

use std::path::Path;
use std::process::Command;

/// Where Debian's `chromium` package puts the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Whether Debian's chromium is installed.
pub fn installed() -> bool {
    Path::new(CHROMIUM).exists()
}

/// A headless Chromium with its own throwaway `profile` directory, quiet and without network
/// traffic of its own; add what to do (`--dump-dom`, `--screenshot=FILE`) and the URL.
pub fn headless(profile: &Path) -> Command {
    let mut command = Command::new(CHROMIUM);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
    command
}

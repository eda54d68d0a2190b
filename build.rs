//! Decides, when the tests are built, which outside services are absent, so a test that
//! needs one is reported by libtest as `ignored, <why>` in plain `cargo test` output
//! (a skip printed with `eprintln!` inside a passing test is captured and never shown).
//! Under `CI=true` nothing is ignored: those tests run and fail loudly instead.
//!
//! cfgs: `callbid_no_postgres` (no `DATABASE_URL`), `callbid_no_prism` (no
//! `TWILIO_PRISM_API_URL`), `callbid_no_browser` (no chromium / chromedriver at
//! `CHROMIUM_BIN` / `CHROMEDRIVER_BIN`, default `/usr/bin/…`).

fn set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

fn main() {
    for v in [
        "CI",
        "DATABASE_URL",
        "TWILIO_PRISM_API_URL",
        "CHROMIUM_BIN",
        "CHROMEDRIVER_BIN",
    ] {
        println!("cargo::rerun-if-env-changed={v}");
    }
    println!("cargo::rerun-if-changed=/usr/bin/chromium");
    println!("cargo::rerun-if-changed=/usr/bin/chromedriver");
    for cfg in [
        "callbid_no_postgres",
        "callbid_no_prism",
        "callbid_no_browser",
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if ci {
        return;
    }
    if !set("DATABASE_URL") {
        println!("cargo::rustc-cfg=callbid_no_postgres");
    }
    if !set("TWILIO_PRISM_API_URL") {
        println!("cargo::rustc-cfg=callbid_no_prism");
    }
    let exists = |var: &str, default: &str| {
        let p = std::env::var(var).unwrap_or_else(|_| default.to_owned());
        std::path::Path::new(&p).exists()
    };
    if !exists("CHROMIUM_BIN", "/usr/bin/chromium")
        || !exists("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")
    {
        println!("cargo::rustc-cfg=callbid_no_browser");
    }
}

//! Decides, when the tests are built, whether PostgreSQL is absent, so a test that needs
//! it is reported by libtest as `ignored, <why>` in plain `cargo test` output (a skip
//! printed inside a passing test is captured and never shown). Under `CI=true` nothing
//! is ignored: those tests run and fail loudly instead. (The workspace root's build.rs
//! does the same for the end-to-end tests under `tests/`.)
//!
//! cfg: `callbid_no_postgres` (no `DATABASE_URL`).

fn main() {
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=DATABASE_URL");
    println!("cargo::rustc-check-cfg=cfg(callbid_no_postgres)");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let pg = std::env::var("DATABASE_URL").is_ok_and(|v| !v.trim().is_empty());
    if !ci && !pg {
        println!("cargo::rustc-cfg=callbid_no_postgres");
    }
}

//! Helpers shared by the integration tests.
#![allow(dead_code)]

/// `DATABASE_URL`, or `None` with a printed skip message. With `CI=true` a missing
/// `DATABASE_URL` is a failure: CI must run the PostgreSQL tests (see `.ci/postgres.sh`).
pub fn database_url(test: &str) -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "CI=true but DATABASE_URL is unset: source .ci/postgres.sh before the tests"
            );
            eprintln!("skipping PostgreSQL test {test}: DATABASE_URL is not set");
            None
        }
    }
}

/// A prefix no earlier run used, so tests can share one PostgreSQL database.
pub fn unique_prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{name}-{}-{nanos}", std::process::id())
}

//! Driving real headless Chromium through chromedriver (WebDriver) from the end-to-end
//! tests: start the driver, open sessions (each with its own profile), poll the page.
//! Shared by `dashboard_browser.rs` and `agent_desk_browser.rs`.
#![allow(dead_code)]

/// Kills chromedriver when the test ends, however it ends, and every browser process
/// that uses this test's profile directory (Chromium outlives a killed chromedriver, so a
/// failing test would otherwise leave a browser running).
pub struct ChildGuard {
    driver: std::process::Child,
    profile: std::path::PathBuf,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let marker = format!("--user-data-dir={}", self.profile.display());
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        let pids: Vec<String> = procs
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                name.bytes().all(|b| b.is_ascii_digit()).then_some(name)
            })
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).contains(&marker))
                    .unwrap_or(false)
            })
            .collect();
        if !pids.is_empty() {
            let _ = std::process::Command::new("kill")
                .arg("-KILL")
                .args(&pids)
                .status();
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The browser binaries, or why the test cannot run (a failure under CI).
pub fn browser_binaries() -> Option<(String, String)> {
    let driver =
        std::env::var("CHROMEDRIVER_BIN").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let chromium = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing: Vec<&str> = [&driver, &chromium]
        .into_iter()
        .filter(|p| !std::path::Path::new(p.as_str()).exists())
        .map(|p| p.as_str())
        .collect();
    if missing.is_empty() {
        return Some((driver, chromium));
    }
    let why = format!(
        "browser test: {} missing (install Debian's chromium and chromium-driver: `source .ci/chromium.sh`)",
        missing.join(" and ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}");
    }
    eprintln!("skipping: {why}");
    None
}

pub async fn start_chromedriver(driver: &str, profile: &std::path::Path) -> (ChildGuard, String) {
    let port = free_port();
    let child = std::process::Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {driver}: {e}"));
    let guard = ChildGuard {
        driver: child,
        profile: profile.to_path_buf(),
    };
    let url = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Ok(res) = reqwest::get(format!("{url}/status")).await {
            if res.status().is_success() {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "chromedriver did not answer on {url} within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    (guard, url)
}

pub async fn connect(
    driver_url: &str,
    chromium: &str,
    profile: &std::path::Path,
    downloads: &std::path::Path,
) -> fantoccini::Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1440,1250",
                format!("--user-data-dir={}", profile.display()),
            ],
            "prefs": {
                "download.default_directory": downloads.display().to_string(),
                "download.prompt_for_download": false,
                "download.directory_upgrade": true,
                "safebrowsing.enabled": false,
            },
        }),
    );
    // chromedriver listens on plain HTTP on loopback: no TLS stack needed.
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    fantoccini::ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(driver_url)
        .await
        .unwrap_or_else(|e| panic!("WebDriver session via {driver_url}: {e}"))
}

/// The call ids of the table's rows, in order.
pub async fn shown_ids(c: &fantoccini::Client) -> Vec<String> {
    let v = c
        .execute(
            "return Array.from(document.querySelectorAll('#calls tbody tr')).map(r => r.dataset.callId);",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

/// Polls `check` until it holds (10 s), else fails with what was last seen.
pub async fn eventually<T: std::fmt::Debug, F, Fut>(
    what: &str,
    mut probe: F,
    check: impl Fn(&T) -> bool,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let v = probe().await;
        if check(&v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: last seen {v:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A headless Chromium session and what it needs kept alive.
pub struct Browser {
    pub c: fantoccini::Client,
    pub downloads: tempfile::TempDir,
    pub _driver: ChildGuard,
    _profile: tempfile::TempDir,
}

/// Starts chromedriver and a Chromium session with its own profile and download
/// directory; `None` (after saying why) when the binaries are missing outside CI.
pub async fn browser() -> Option<Browser> {
    let (driver, chromium) = browser_binaries()?;
    let profile = tempfile::tempdir().unwrap();
    let downloads = tempfile::tempdir().unwrap();
    let (guard, driver_url) = start_chromedriver(&driver, profile.path()).await;
    let c = connect(&driver_url, &chromium, profile.path(), downloads.path()).await;
    Some(Browser {
        c,
        downloads,
        _driver: guard,
        _profile: profile,
    })
}

/// Opens `url` and waits until its script has marked the page ready.
pub async fn open(c: &fantoccini::Client, url: &str) {
    c.goto(url).await.unwrap();
    c.wait()
        .for_element(fantoccini::Locator::Css("body[data-ready='true']"))
        .await
        .unwrap();
}

pub async fn by_id(c: &fantoccini::Client, id: &str) -> fantoccini::elements::Element {
    c.find(fantoccini::Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
}

pub async fn click(c: &fantoccini::Client, id: &str) {
    by_id(c, id).await.click().await.unwrap();
}

pub async fn type_into(c: &fantoccini::Client, id: &str, text: &str) {
    by_id(c, id).await.send_keys(text).await.unwrap();
}

pub async fn text_of(c: &fantoccini::Client, id: &str) -> String {
    text_at(c, fantoccini::Locator::Id(id)).await
}

/// The text of the first element `at` finds. The page re-renders its tables and feeds
/// while a test reads them, so an element found can be gone (stale) by the time its
/// text is read: that, or a missing element, comes back as a description instead of a
/// panic, so `eventually` polls again ([`wait_text`] never accepts one; a direct
/// `eventually` must check for the expected text, not only for some text).
pub async fn text_at(c: &fantoccini::Client, at: fantoccini::Locator<'_>) -> String {
    match c.find(at).await {
        Ok(el) => match el.text().await {
            Ok(t) => t,
            Err(e) => format!("<unreadable: {e}>"),
        },
        Err(e) => format!("<not found: {e}>"),
    }
}

pub async fn displayed(c: &fantoccini::Client, id: &str) -> bool {
    by_id(c, id).await.is_displayed().await.unwrap()
}

/// Waits (10 s) until the text of `#id` passes `check`; returns it.
pub async fn wait_text(
    c: &fantoccini::Client,
    id: &str,
    what: &str,
    check: impl Fn(&String) -> bool,
) -> String {
    // A missing or stale element comes back as a description, which a loose check such
    // as "not empty" would accept: never take one for the element's text.
    eventually(what, || text_of(c, id), |t| !is_description(t) && check(t)).await
}

/// Whether `t` is [`text_at`]'s description of an element it could not read.
fn is_description(t: &str) -> bool {
    t.starts_with("<not found: ") || t.starts_with("<unreadable: ")
}

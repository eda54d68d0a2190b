//! The `callbid` binary: `sign`, `check`, `simulate` (temporary server and database),
//! and configuration errors that name the key and the value.

use std::process::Command;

use callbid_twilio::signature::RequestValidator;

fn callbid(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_callbid"));
    c.current_dir(dir)
        .env_remove("TWILIO_AUTH_TOKEN")
        .env_remove("CALLBID_AUTH_TOKEN");
    c
}

#[test]
fn sign_prints_the_twilio_signature_for_the_configured_token() {
    let dir = tempfile::tempdir().unwrap();
    let url = "http://127.0.0.1:3000/voice";
    let out = callbid(dir.path())
        .env("CALLBID_AUTH_TOKEN", "s3cret")
        .args(["sign", url, "CallSid=CA123", "From=+15125550123"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = RequestValidator::new("s3cret")
        .compute_signature(url, &[("CallSid", "CA123"), ("From", "+15125550123")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want);
    let out = callbid(dir.path())
        .args(["sign", url, "CallSid=CA1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("auth_token"));
    let out = callbid(dir.path())
        .env("CALLBID_AUTH_TOKEN", "s3cret")
        .args(["sign", url, "CallSid"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"CallSid\""));
}

#[test]
fn check_prints_buyers_with_rules_and_refuses_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let buyers = callbid_server::demo::demo_buyers(2);
    let good = dir.path().join("buyers.toml");
    std::fs::write(
        &good,
        callbid_server::demo::buyers_toml("http://127.0.0.1:9", &buyers),
    )
    .unwrap();
    let mut c = callbid(dir.path());
    c.args(["check", good.to_str().unwrap()]);
    for (i, b) in buyers.iter().enumerate() {
        c.env(format!("MOCK_SD_KEY_{i}"), &b.api_key);
    }
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 buyers"), "{stdout}");
    assert!(
        stdout.contains("rule:") || stdout.contains("no rules"),
        "{stdout}"
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[buyer]]\nid = \"x\"\nkind = \"nope\"\n").unwrap();
    let out = callbid(dir.path())
        .args(["check", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml"));
}

#[test]
fn simulate_uses_a_temporary_database_never_callbid_db() {
    let dir = tempfile::tempdir().unwrap();
    let out = callbid(dir.path())
        .args(["simulate", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("temporary server"), "{stdout}");
    assert!(stdout.contains("simulator errors"), "{stdout}");
    assert!(!dir.path().join("callbid.db").exists());
}

#[test]
fn configuration_errors_name_the_key_and_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let out = callbid(dir.path())
        .env("CALLBID_DIAL_TIMEOUT", "9000")
        .args(["sign", "http://x/voice"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("dial_timeout") && err.contains("9000"),
        "{err}"
    );
    std::fs::write(dir.path().join("callbid.toml"), "sede = 1\n").unwrap();
    let out = callbid(dir.path()).args(["serve"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("sede"), "{err}");
}

/// Kills the server when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serve_with_agents_and_pools_files_mounts_the_desk_and_the_lease_api() {
    let dir = tempfile::tempdir().unwrap();
    let agents = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/agents.toml");
    let pools = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/pools.toml");
    std::fs::write(
        dir.path().join("callbid.toml"),
        format!(
            "listen = \"127.0.0.1:0\"\nagents = {agents:?}\npools = {pools:?}\nfallback = \"in-house,message\"\nin_house_number = \"+15125550999\"\nauth_token = \"tok\"\n"
        ),
    )
    .unwrap();
    let (_server, banner) = serve_until(dir.path(), "number pools: ");
    let base = listening_on(&banner);
    let v: serde_json::Value = reqwest::get(format!("{base}/desk/api/agents"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["pool"], "in-house", "{v}");
    let ids: Vec<&str> = v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["alice", "bob", "carol"]);
    assert_eq!(v["agents"][0]["presence"], "available");
    let page = reqwest::get(format!("{base}/desk?agent=alice"))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    // The number pools' lease API is mounted, public.
    let leased: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/pool/cars/lease"))
        .json(&serde_json::json!({"visitor": "v-1", "listing": "listing-42"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(leased["outcome"], "leased", "{leased}");

    // A bad agents file is refused at start, naming the entry and the field.
    let bad = dir.path().join("bad-agents.toml");
    std::fs::write(
        &bad,
        "[pool]\nid = \"p\"\n[[agent]]\nid = \"a\"\nreach = \"555\"\n",
    )
    .unwrap();
    let out = callbid(dir.path())
        .env("CALLBID_AGENTS", &bad)
        .env("CALLBID_LISTEN", "127.0.0.1:0")
        .args(["serve"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("agent[0] (a).reach") && err.contains("555"),
        "{err}"
    );
}

/// The server's base URL from its banner ("callbid IVR listening on …").
fn listening_on(banner: &[String]) -> String {
    banner
        .iter()
        .find_map(|l| l.strip_prefix("callbid IVR listening on "))
        .unwrap_or_else(|| panic!("no banner: {banner:?}"))
        .trim()
        .to_owned()
}

/// Starts `callbid serve` in `dir` and reads its banner up to a line containing
/// `last`; returns the server and the banner.
fn serve_until(dir: &std::path::Path, last: &str) -> (Running, Vec<String>) {
    use std::io::BufRead;
    let child = callbid(dir)
        .args(["serve"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Running(child);
    let stdout = server.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut banner = Vec::new();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(30)) {
        let done = line.contains(last);
        banner.push(line);
        if done {
            break;
        }
    }
    (server, banner)
}

const OUTBOUND_TOML: &str = "provider = \"twilio\"\ncalls_per_second = 5\nfree_agents = 3\npacer_interval_ms = 200\nsuppression = [\"+12125550100\", \"+15125550100\", \"+14155550100\", \"+18085550100\", \"+918047100100\"]\n[[caller_id]]\nnumber = \"+15125559000\"\n[[caller_id]]\nnumber = \"+918047109000\"\n";

fn csv(numbers: &[&str]) -> String {
    format!("number\n{}\n", numbers.join("\n"))
}

/// An area whose numbers are inside their calling window right now (the windows are in
/// the callee's local time), asked of the preview as an operator would before launching.
/// US areas and India together always have one.
async fn callable_area(http: &reqwest::Client, base: &str) -> &'static str {
    for area in ["+1212555", "+1512555", "+1415555", "+1808555", "+91804710"] {
        let v: serde_json::Value = http
            .post(format!("{base}/api/campaigns/preview"))
            .header("content-type", "text/csv")
            .body(csv(&[&format!("{area}0123")]))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["callable"] == 1 {
            return area;
        }
    }
    panic!("some of the areas is always inside its window")
}

/// Creates campaign `dec` (a recorded message) over `numbers` and starts it.
async fn create_and_start(http: &reqwest::Client, base: &str, numbers: &[&str]) {
    let res = http
        .post(format!(
            "{base}/api/campaigns?id=dec&flow=message&message=Hello"
        ))
        .header("content-type", "text/csv")
        .body(csv(numbers))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let res = http
        .post(format!("{base}/api/campaigns/dec/start"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
}

/// Campaign `dec` once the answered call is done and the other two wait for retries
/// (or the last answer after 30 s).
async fn settled_campaign(http: &reqwest::Client, base: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..150 {
        last = http
            .get(format!("{base}/api/campaigns/dec"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let p = &last["progress"];
        if p["dialing"] == 0 && p["done"] == 1 && p["retry_scheduled"] == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    last
}

/// The `Calls.create` requests the fake received, as `(To, From, Url, StatusCallback)`.
async fn fake_creates(fake: &str) -> Vec<[Option<String>; 4]> {
    let requests: serde_json::Value = reqwest::get(format!("{fake}/fake/requests"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let param = |r: &serde_json::Value, k: &str| -> Option<String> {
        r["form"]
            .as_array()?
            .iter()
            .find(|p| p[0] == k)
            .and_then(|p| p[1].as_str().map(str::to_owned))
    };
    requests
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with("/Calls.json"))
        .map(|r| ["To", "From", "Url", "StatusCallback"].map(|k| param(r, k)))
        .collect()
}

#[tokio::test]
async fn serve_with_an_outbound_file_runs_a_campaign_through_the_fake_twilio() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("outbound.toml"), OUTBOUND_TOML).unwrap();
    std::fs::write(
        dir.path().join("callbid.toml"),
        "listen = \"127.0.0.1:0\"\noutbound = \"outbound.toml\"\nauth_token = \"tok\"\n",
    )
    .unwrap();
    let (_server, banner) = serve_until(dir.path(), "outbound: ");
    let base = listening_on(&banner);
    let fake = banner
        .iter()
        .find_map(|l| l.split("(fake at ").nth(1))
        .and_then(|s| s.split(')').next())
        .unwrap_or_else(|| panic!("no fake in the banner: {banner:?}"))
        .to_owned();
    let http = reqwest::Client::new();
    let area = callable_area(&http, &base).await;
    let (answers, busy) = (format!("{area}0123"), format!("{area}0128"));
    let (no_answer, suppressed) = (format!("{area}0129"), format!("{area}0100"));
    create_and_start(&http, &base, &[&answers, &busy, &no_answer, &suppressed]).await;

    // The pacer dials, the fake's callees answer or not, the callbacks settle them.
    let last = settled_campaign(&http, &base).await;
    let p = &last["progress"];
    // A suppressed contact is final from the upload on, and never dialed.
    assert_eq!(p["queued"], 0, "{last}");
    assert_eq!(p["suppressed"], 1, "{last}");
    assert_eq!(p["attempts"], 3, "{last}");
    assert_eq!(p["dialing"], 0, "{last}");
    // The answered call is done; busy and no-answer wait for their retries.
    assert_eq!(p["done"], 1, "{last}");
    assert_eq!(p["retry_scheduled"], 2, "{last}");
    // Every ended call taught its caller ID (the status callback names it).
    let ids = last["caller_ids"].as_array().unwrap();
    let sum = |k: &str| ids.iter().map(|c| c[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!((sum("attempts"), sum("answered")), (3, 1), "{last}");

    let creates = fake_creates(&fake).await;
    assert_eq!(creates.len(), 3, "{creates:?}");
    for [to, from, url, status] in &creates {
        assert_ne!(
            to.as_deref(),
            Some(suppressed.as_str()),
            "a suppressed number was dialed"
        );
        assert!(status
            .as_deref()
            .unwrap()
            .starts_with(&format!("{base}/campaigns/dec/status")));
        assert!(url
            .as_deref()
            .unwrap()
            .starts_with(&format!("{base}/campaigns/dec/answer")));
        assert!(from.is_some());
    }
    // The page is mounted.
    let page = reqwest::get(format!("{base}/campaigns")).await.unwrap();
    assert_eq!(page.status(), 200);
}

#[test]
fn a_bad_outbound_file_is_refused_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("outbound.toml"),
        "provider = \"twilio\"\n[[caller_id]]\nnumber = \"555\"\n",
    )
    .unwrap();
    let out = callbid(dir.path())
        .env("CALLBID_OUTBOUND", "outbound.toml")
        .env("CALLBID_LISTEN", "127.0.0.1:0")
        .args(["serve"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("caller_id[0].number") && err.contains("555"),
        "{err}"
    );
}

/// A SQLite database holding one call auctioned and logged as the IVR logs it: "cheap"
/// (20.00, 20 billable calls of history) beats "pricey" (21.00, no history) on score.
async fn auctioned_db(dir: &std::path::Path) -> String {
    use std::sync::Arc;

    use callbid_core::auction::Auction;
    use callbid_core::inprocess::InProcessBuyer;
    use callbid_core::scoring::{ScoringConfig, ScoringEngine};
    use callbid_core::state::{history_keys, DurationHistory, MemoryDurationHistory};
    use callbid_core::{
        BuyerEntry, BuyerId, BuyerProfile, CallContext, CallId, Destination, Money,
    };
    let url = format!("sqlite://{}", dir.join("calls.db").display());
    let store = callbid_store::Store::open(&url).await.unwrap();
    let call = CallContext::new(
        CallId::new("CAreplay").unwrap(),
        "78701".parse().unwrap(),
        callbid_core::ServiceType::new("plumbing").unwrap(),
        chrono::Utc::now(),
    );
    let history = Arc::new(MemoryDurationHistory::new());
    let mut b = Auction::builder();
    for (id, cents, billable) in [("cheap", 2000, 20), ("pricey", 2100, 0)] {
        let buyer = BuyerId::new(id).unwrap();
        let profile = BuyerProfile::new(buyer.clone());
        for _ in 0..billable {
            let keys = history_keys(&buyer, &call, profile.time_zone);
            history.record(&keys, true).await.unwrap();
        }
        let dest = Destination::parse("+15125550199").unwrap();
        let price = Money::usd(rust_decimal::Decimal::new(cents, 2));
        let e = BuyerEntry::new(Arc::new(InProcessBuyer::new(buyer, price, dest)));
        b = b.buyer(e.with_profile(profile));
    }
    let scorer = ScoringEngine::new(history, ScoringConfig::default()).unwrap();
    let auction = b.scorer(Arc::new(scorer)).build().unwrap();
    let outcome = auction.run(&call).await;
    callbid_server::settle::log_auction(&store, &auction, &call, &outcome)
        .await
        .unwrap();
    url
}

#[tokio::test]
async fn replay_confirms_the_logged_auction_and_shows_a_what_if() {
    let dir = tempfile::tempdir().unwrap();
    let url = auctioned_db(dir.path()).await;
    let run = |args: &[&str]| {
        callbid(dir.path())
            .env("CALLBID_DATABASE_URL", &url)
            .arg("replay")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["CAreplay"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("logged winner cheap"), "{text}");
    assert!(text.contains("replay agrees"), "{text}");
    assert!(
        text.contains("all 20/20"),
        "history counts are shown: {text}"
    );
    let out = run(&["CAreplay", "--strategy", "highest-bid"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("what-if winner: pricey"), "{text}");
    let out = run(&["CAreplay", "--duration-history", "off", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["replay"]["winner"], "pricey");
    // Bad input names the option and the value; an unknown call is said to be unknown.
    let out = run(&["CAreplay", "--floor", "ten"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("floor \"ten\""));
    let out = run(&["CAreplay", "--hour-weight", "9"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--hour-weight \"9\""));
    let out = run(&["CAmissing"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no logged auction explanation"));
}

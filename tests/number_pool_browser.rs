//! `callbid-dni.js` in a real headless Chromium (issue 9, seed 003): a page marked with
//! `data-callbid-listing` gets a tracking number, the lease is renewed while the page is
//! open, a reload shows the same number, an element inserted later is swapped, and with
//! the lease API down the page keeps its own number.

mod common;

use std::sync::Arc;

use axum::response::Html;
use axum::routing::get;
use axum::Router;
use callbid::core::pool::{MemoryNumberPoolStore, NumberPoolStore};
use callbid_server::pool::{self, PoolApp, PoolLimits, DNI_JS};
use common::browser::*;

const POOL: &str = r#"
[[pool]]
id = "cars"
mode = "visitor_listing"
lease_secs = 600
heartbeat_secs = 1
exhaustion = "overflow"
overflow_number = "+15125550199"
numbers = ["+15125550101", "+15125550102", "+15125550103"]
"#;

const ORIGINAL: &str = "(512) 555-0100";

/// The demo page: one listing's number in a tel: link, and a button that inserts a
/// second listing's number later (as a popup would). `api` is where the script sends
/// leases (empty: where it came from).
fn page(api: &str) -> String {
    let api_attr = if api.is_empty() {
        String::new()
    } else {
        format!(" data-api=\"{api}\"")
    };
    format!(
        r#"<!doctype html><html><body data-ready="true">
<p>Call the dealer: <a id="n1" href="tel:+15125550100" data-callbid-listing="listing-1">{ORIGINAL}</a></p>
<div id="later"></div>
<button id="add" onclick="document.getElementById('later').innerHTML = '<a id=&quot;n2&quot; href=&quot;tel:+15125550100&quot; data-callbid-listing=&quot;listing-2&quot;>{ORIGINAL}</a>'">more</button>
<script src="/pool/callbid-dni.js" data-pool="cars"{api_attr}></script>
</body></html>"#
    )
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    base
}

/// The text and tel: target of `#id`.
async fn shown(c: &fantoccini::Client, id: &str) -> (String, String) {
    let v = c
        .execute(
            "const e = document.getElementById(arguments[0]); return e ? [e.textContent, e.getAttribute('href')] : ['', ''];",
            vec![serde_json::json!(id)],
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

#[cfg_attr(
    callbid_no_browser,
    ignore = "needs chromium and chromedriver (/usr/bin or CHROMIUM_BIN / CHROMEDRIVER_BIN; source .ci/chromium.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dni_swaps_renews_keeps_the_number_and_falls_back_to_the_original() {
    let Some(b) = browser().await else { return };
    let c = &b.c;
    let store: Arc<dyn NumberPoolStore> = Arc::new(MemoryNumberPoolStore::new());
    let specs = pool::spec::parse(POOL, "pools.toml").unwrap();
    // The page and the API on one server (its own origin may always call the API).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = PoolApp::new(store.clone(), specs, PoolLimits::default(), Some(&base))
        .await
        .unwrap();
    let router = pool::router(app).route("/demo", get(|| async { Html(page("")) }));
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });

    c.goto(&format!("{base}/demo")).await.unwrap();
    let (text, href) = eventually("#n1 swapped", || shown(c, "n1"), |(t, _)| t != ORIGINAL).await;
    assert!(href.starts_with("tel:+1512555010"), "{href}");
    let number = href.trim_start_matches("tel:").to_owned();
    assert_eq!(text, format!("(512) 555-{}", &number[8..]));

    // Renewed while the page is open (the pool's heartbeat is 1 s).
    eventually(
        "a renewal",
        || async {
            c.execute(
                "return document.documentElement.getAttribute('data-callbid-renewals') || '0';",
                vec![],
            )
            .await
            .unwrap()
            .as_str()
            .unwrap_or("0")
            .parse::<u32>()
            .unwrap_or(0)
        },
        |n| *n >= 1,
    )
    .await;

    // An element added later (a popup) is swapped too, to another listing's number.
    click(c, "add").await;
    let (_, href2) = eventually(
        "#n2 swapped",
        || shown(c, "n2"),
        |(t, _)| t.starts_with("(512) 555-01"),
    )
    .await;
    assert_ne!(href2, href, "two listings share a number");

    // A reload: the same visitor (cookie) and listing get the same number.
    c.refresh().await.unwrap();
    let (_, again) = eventually(
        "#n1 swapped after reload",
        || shown(c, "n1"),
        |(t, _)| t != ORIGINAL,
    )
    .await;
    assert_eq!(again, href);

    // The API down: the page keeps its own number.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let static_only = Router::new()
        .route(
            "/demo",
            get(move || {
                let p = page(&dead);
                async move { Html(p) }
            }),
        )
        .route(
            "/pool/callbid-dni.js",
            get(|| async { ([("content-type", "text/javascript")], DNI_JS) }),
        );
    let other = serve(static_only).await;
    c.goto(&format!("{other}/demo")).await.unwrap();
    let (t, h) = eventually(
        "#n1 left alone",
        || async {
            let state = c
                .execute(
                    "return document.getElementById('n1').getAttribute('data-callbid-state');",
                    vec![],
                )
                .await
                .unwrap();
            (
                state.as_str().unwrap_or("").to_owned(),
                shown(c, "n1").await,
            )
        },
        |(s, _)| s == "original",
    )
    .await
    .1;
    assert_eq!((t.as_str(), h.as_str()), (ORIGINAL, "tel:+15125550100"));
    let _ = b.c.clone().close().await;
}

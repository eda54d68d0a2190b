//! Operator access over real HTTP (`serve_gracefully`, so the client IP is known): the
//! login sets a signed session cookie that opens the API; wrong tokens, by form or
//! bearer, lock the address out with `429` and `Retry-After`, even for the right token.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use callbid_server::auth::{self, OperatorAuth, FREE_ATTEMPTS};

const TOKEN: &str = "operator-access-test-token-0123456789abcdef";

async fn start() -> (String, tokio::sync::oneshot::Sender<()>) {
    let routes = Router::new().route("/api/secret", get(|| async { "the call log" }));
    let app = auth::protect(routes, &OperatorAuth::with_token(TOKEN));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(callbid_server::serve::serve_gracefully(
        listener,
        app,
        async move {
            let _ = rx.await;
        },
        Duration::from_secs(1),
    ));
    (base, tx)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn login(http: &reqwest::Client, base: &str, token: &str) -> reqwest::Response {
    http.post(format!("{base}/login"))
        .form(&[("token", token), ("next", "/api/secret")])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn login_cookie_opens_the_api_and_logout_ends_it() {
    let (base, _stop) = start().await;
    let http = client();
    let res = login(&http, &base, TOKEN).await;
    assert_eq!(res.status(), 303);
    let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.starts_with("callbid_session="), "{set}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    assert!(!set.contains(TOKEN), "the cookie never holds the token");
    let cookie = set.split(';').next().unwrap().to_owned();
    let ok = http
        .get(format!("{base}/api/secret"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "the call log");
    let out = http
        .post(format!("{base}/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let tampered = cookie.replacen('=', "=x", 1);
    let res = http
        .get(format!("{base}/api/secret"))
        .header("cookie", tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn wrong_tokens_lock_the_address_out() {
    let (base, _stop) = start().await;
    let http = client();
    for i in 0..FREE_ATTEMPTS - 1 {
        let res = if i % 2 == 0 {
            login(&http, &base, "wrong").await
        } else {
            http.get(format!("{base}/api/secret"))
                .bearer_auth("wrong")
                .send()
                .await
                .unwrap()
        };
        assert_eq!(res.status(), 401, "attempt {i}");
    }
    // The last free attempt fails and locks; then even the right token is refused.
    assert_eq!(login(&http, &base, "wrong").await.status(), 401);
    let locked = login(&http, &base, TOKEN).await;
    assert_eq!(locked.status(), 429);
    let retry: u64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert!(locked
        .text()
        .await
        .unwrap()
        .contains("Too many wrong tokens"));
    let api = http
        .get(format!("{base}/api/secret"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 429);
    // After the lockout the right token works and clears the count.
    tokio::time::sleep(Duration::from_millis(1100 * retry)).await;
    assert_eq!(login(&http, &base, TOKEN).await.status(), 303);
    assert_eq!(login(&http, &base, "wrong").await.status(), 401);
}

/// Nested under `/callbid` in a host app, a page redirects to the prefixed login, whose
/// form posts to the prefixed path and leads back under the prefix.
#[tokio::test]
async fn the_login_flow_respects_the_mount_prefix() {
    use tower::ServiceExt;
    let pages = Router::new().route("/dashboard", get(|| async { "dashboard" }));
    let host = Router::new().nest(
        "/callbid",
        auth::protect(pages, &OperatorAuth::with_token(TOKEN)),
    );
    let send = |req: axum::http::Request<axum::body::Body>| host.clone().oneshot(req);
    let res = send(
        axum::http::Request::get("/callbid/dashboard")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "/callbid/login?next=/callbid/dashboard"
    );
    let page = send(
        axum::http::Request::get("/callbid/login?next=/callbid/dashboard")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    let html = axum::body::to_bytes(page.into_body(), 1 << 20)
        .await
        .unwrap();
    let html = String::from_utf8_lossy(&html);
    assert!(html.contains(r#"action="/callbid/login""#), "{html}");
    let res = send(
        axum::http::Request::post("/callbid/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(format!(
                "token={TOKEN}&next=%2Fcallbid%2Fdashboard"
            )))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/callbid/dashboard");
    let api = send(
        axum::http::Request::post("/callbid/logout")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(api.headers()["location"], "/callbid/login");
}

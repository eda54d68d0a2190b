//! examples/embed_axum end to end: the host app's own route works, and a full signed
//! simulated call to the IVR nested under `/callbid` completes, with every URL the IVR
//! generated (Gather and Dial actions, callbacks) under the prefix; the dashboard page
//! and API answer under the prefix too.

#[path = "../examples/embed_axum/host.rs"]
#[allow(dead_code)]
mod host;

use callbid::core::state::CallStatus as LogStatus;
use callbid::core::CallId;
use callbid::twilio::sim::{CallScript, DialOutcome, Simulator};

const TOKEN: &str = "embed-e2e-token";

#[tokio::test]
async fn host_route_and_a_signed_call_under_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("embed.db").display());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", listener.local_addr().unwrap());
    let (app, ivr) = host::app(&public, &db, TOKEN).await.unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();

    // The host's own route and state.
    for n in 1..=2 {
        let body = http.get(format!("{public}/hello")).send().await.unwrap();
        assert_eq!(body.status(), 200);
        let text = body.text().await.unwrap();
        assert_eq!(text, format!("hello from the host app ({n})"));
    }

    // One whole signed call under /callbid.
    let base = format!("{public}{}", host::PREFIX);
    let sim = Simulator::new(&base, TOKEN)
        .unwrap()
        .voice_path(format!("{base}/voice"))
        .status_callback(format!("{base}/ivr/status"));
    let sid = "CA00000000000000000000000000e3bed1";
    let t = sim
        .run(
            CallScript::new("+15125550123", "+18005550100")
                .call_sid(sid)
                .press("78701")
                .press("1")
                .dial(DialOutcome::answered(2, 120)),
        )
        .await
        .unwrap();
    let urls = t.requested_urls();
    assert!(urls.len() >= 4, "{urls:?}");
    for u in &urls {
        assert!(
            u.starts_with(&format!("{base}/")),
            "{u} is not under {base}"
        );
    }
    assert!(
        urls.iter().any(|u| u.contains("/callbid/ivr/dial-result")),
        "{urls:?}"
    );
    let record = ivr
        .stores
        .log
        .record(&CallId::new(sid).unwrap())
        .await
        .unwrap()
        .expect("call logged");
    assert_eq!(record.status, LogStatus::Completed, "{record:?}");
    assert_eq!(
        record.buyer.as_ref().map(|b| b.as_str()),
        Some("acme-plumbing")
    );

    // Signatures are checked against the prefixed public URL: an unsigned post is 403.
    let r = http
        .post(format!("{base}/voice"))
        .form(&[("CallSid", "CA1"), ("From", "+15125550123")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The dashboard under the prefix: its page points its assets and API at the prefix.
    let page = http
        .get(format!("{base}/dashboard"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"content="/callbid""#), "{page}");
    assert!(page.contains(r#"src="/callbid/dashboard/assets/dashboard.js""#));
    let calls = http
        .get(format!("{base}/api/calls"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(calls.contains(sid), "{calls}");
    server.abort();
}

//! Misbehaving HTTP endpoints on raw tokio sockets (127.0.0.1 only), for executor and
//! hostile-endpoint tests. Every loop is bounded and every task ends with the runtime.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How a raw endpoint misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Sends the status line and headers (with a Content-Length), then nothing.
    HangAfterHeaders,
    /// Accepts the connection and never answers.
    HangBeforeHeaders,
    /// Sends a JSON answer one byte every 50 ms.
    Trickle,
    /// Streams 10 MB without a Content-Length (chunked).
    TenMegabytesChunked,
    /// Announces and sends 10 MB.
    TenMegabytesSized,
    /// Announces 1000 bytes, sends 20, closes.
    CloseMidBody,
    /// Answers with bytes that are not HTTP.
    Garbage,
    /// Answers `body` (JSON) correctly, but only after `after_ms` milliseconds.
    Late {
        /// The delay before the status line.
        after_ms: u64,
        /// The JSON body sent then.
        body: &'static [u8],
    },
}

async fn read_request(s: &mut TcpStream) -> String {
    // Read until the end of the headers and whatever body arrived with them; the
    // requests in these tests are small and sent at once.
    let mut buf = vec![0u8; 16 * 1024];
    let mut seen = Vec::new();
    for _ in 0..64 {
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => return String::from_utf8_lossy(&seen).into_owned(),
            Ok(Ok(n)) => {
                seen.extend_from_slice(&buf[..n]);
                if let Some(pos) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&seen[..pos]).to_ascii_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if seen.len() >= pos + 4 + len {
                        return head;
                    }
                }
            }
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

async fn serve_one(mut s: TcpStream, how: Misbehaviour) {
    read_request(&mut s).await;
    misbehave(s, how).await;
}

async fn misbehave(mut s: TcpStream, how: Misbehaviour) {
    let _ = match how {
        Misbehaviour::HangAfterHeaders => {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n")
                .await;
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        }
        Misbehaviour::HangBeforeHeaders => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        }
        Misbehaviour::Trickle => {
            let body = br#"{"result":{"accepted":true,"payout":"99.00","did":"+18005550100"}}"#;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes()).await;
            for b in body.iter() {
                if s.write_all(&[*b]).await.is_err() {
                    break;
                }
                let _ = s.flush().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(())
        }
        Misbehaviour::TenMegabytesChunked => {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
                .await;
            let chunk = vec![b' '; 64 * 1024];
            let framed = [
                format!("{:x}\r\n", chunk.len()).into_bytes(),
                chunk,
                b"\r\n".to_vec(),
            ]
            .concat();
            for _ in 0..160 {
                if s.write_all(&framed).await.is_err() {
                    break;
                }
            }
            s.write_all(b"0\r\n\r\n").await
        }
        Misbehaviour::TenMegabytesSized => {
            let total = 10 * 1024 * 1024;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {total}\r\n\r\n"
            );
            let _ = s.write_all(head.as_bytes()).await;
            let chunk = vec![b' '; 64 * 1024];
            for _ in 0..160 {
                if s.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            Ok(())
        }
        Misbehaviour::CloseMidBody => {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"result\":{\"accep")
                .await;
            let _ = s.flush().await;
            s.shutdown().await
        }
        Misbehaviour::Late { after_ms, body } => {
            tokio::time::sleep(Duration::from_millis(after_ms)).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(body).await;
            s.shutdown().await
        }
        Misbehaviour::Garbage => {
            let _ = s
                .write_all(b"\x00\x01\x02 this is not HTTP at all\r\n\r\n")
                .await;
            s.shutdown().await
        }
    };
}

/// Starts a misbehaving endpoint; returns its address.
pub async fn misbehaving(how: Misbehaviour) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        // Bounded: at most 64 connections per endpoint in any test.
        for _ in 0..64 {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve_one(s, how));
        }
    });
    addr
}

/// An endpoint that answers a request whose path contains `/ping/` with `ping_body`
/// (JSON, `connection: close`, so the next request opens a new connection) and
/// misbehaves on every other request (the accept).
pub async fn ping_then_misbehave(ping_body: &'static [u8], how: Misbehaviour) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        for _ in 0..64 {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let head = read_request(&mut s).await;
                let first_line = head.lines().next().unwrap_or("").to_string();
                if first_line.contains("/ping/") {
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
                        ping_body.len()
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                    let _ = s.write_all(ping_body).await;
                    let _ = s.shutdown().await;
                } else {
                    misbehave(s, how).await;
                }
            });
        }
    });
    addr
}

/// An endpoint that misbehaves on requests whose request line contains `marker` (for
/// example `/accept`) and answers every other request with `body` (JSON,
/// `connection: close`).
pub async fn misbehave_on(
    marker: &'static str,
    body: &'static [u8],
    how: Misbehaviour,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        for _ in 0..512 {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let head = read_request(&mut s).await;
                if head.lines().next().unwrap_or("").contains(marker) {
                    misbehave(s, how).await;
                } else {
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                    let _ = s.write_all(body).await;
                    let _ = s.shutdown().await;
                }
            });
        }
    });
    addr
}

/// An address where nothing listens (connections are refused).
pub async fn refused() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr
}

//! CSV and Excel exports: RFC 4180 round trip, formula neutralization, page boundaries
//! (more calls than one export page), and a well-formed `.xlsx`.

use std::io::Read;

use callbid_core::state::{CallEvent, CallEventKind};
use callbid_core::{CallId, CampaignId, SourceId};
use callbid_store::export::{COLUMNS, EXPORT_PAGE};
use callbid_store::{CallReports, ReportFilter, ReportQuery, SqliteStore};

mod common;
use common::*;

fn hostile_call() -> Vec<CallEvent> {
    let call = CallId::new("zz-hostile").unwrap();
    let at = t0();
    vec![
        CallEvent::new(
            call.clone(),
            at,
            "incoming",
            CallEventKind::Incoming {
                caller: None,
                dialed: None,
                campaign: Some(CampaignId::new("=cmd|'/c_calc'!A0").unwrap()),
                source: Some(SourceId::new("@SUM(1+1)").unwrap()),
            },
        ),
        CallEvent::new(
            call.clone(),
            at,
            "rec",
            CallEventKind::Recording {
                url: "-2+3,\"quoted\"\r\nnext line".into(),
            },
        ),
        CallEvent::new(
            call,
            at,
            "fallback",
            CallEventKind::Fallback {
                kind: "\tvoicemail".into(),
                reason: "r".into(),
            },
        ),
    ]
}

async fn store_with(n: usize) -> (SqliteStore, usize) {
    let s = SqliteStore::open_in_memory().unwrap();
    let calls = synthetic_calls("x", n, 11);
    s.import_blocking(calls.iter().flatten().cloned()).unwrap();
    s.import_blocking(hostile_call()).unwrap();
    (s, n + 1)
}

#[tokio::test]
async fn csv_round_trips_and_neutralizes_formulas() {
    let n = EXPORT_PAGE as usize * 2 + 321; // crosses page boundaries
    let (s, total) = store_with(n).await;
    let q = ReportQuery::default();
    let mut out = Vec::new();
    let written = callbid_store::export::export_csv(&s, &q, &mut out)
        .await
        .unwrap();
    assert_eq!(written as usize, total);

    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with(&COLUMNS.join(",")));
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), total);
    assert!(rows.iter().all(|r| r.len() == COLUMNS.len()));

    // Same calls, same order as walking the report (no page boundary drops or repeats).
    let mut ids = Vec::new();
    let mut q = q.with_limit(777);
    loop {
        let p = s.page(&q).await.unwrap();
        ids.extend(p.rows.iter().map(|r| r.call_id.to_string()));
        match p.next {
            Some(c) => q = q.after(Some(c)),
            None => break,
        }
    }
    let exported: Vec<&str> = rows.iter().map(|r| &r[0]).collect();
    assert_eq!(exported, ids);

    let col = |name: &str| COLUMNS.iter().position(|c| *c == name).unwrap();
    let hostile = rows.iter().find(|r| &r[0] == "zz-hostile").unwrap();
    assert_eq!(&hostile[col("campaign")], "'=cmd|'/c_calc'!A0");
    assert_eq!(&hostile[col("source")], "'@SUM(1+1)");
    assert_eq!(
        &hostile[col("recording_url")],
        "'-2+3,\"quoted\"\r\nnext line"
    );
    assert_eq!(&hostile[col("fallback")], "'\tvoicemail");
    assert_eq!(&hostile[col("status")], "fallback");
    // Phone numbers start with '+': neutralized too. Amounts are plain decimals.
    let priced = rows.iter().find(|r| !r[col("price")].is_empty()).unwrap();
    assert!(priced[col("caller")].starts_with("'+1"));
    assert!(priced[col("price")]
        .parse::<rust_decimal::Decimal>()
        .is_ok());
}

#[tokio::test]
async fn csv_respects_the_filter() {
    let (s, _) = store_with(300).await;
    let f = ReportFilter::from_pairs([("status", "completed"), ("zip", "78701")]).unwrap();
    let want = s
        .aggregate(&f, callbid_store::GroupBy::Total)
        .await
        .unwrap()[0]
        .calls;
    let mut out = Vec::new();
    let n = callbid_store::export::export_csv(&s, &ReportQuery::new(f), &mut out)
        .await
        .unwrap();
    assert_eq!(n, want);
    assert!(n > 0);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.matches("\r\n").count() as u64, n + 1);
}

#[tokio::test]
async fn xlsx_is_a_workbook_with_every_row() {
    let n = EXPORT_PAGE as usize + 10;
    let (s, total) = store_with(n).await;
    let mut out = Vec::new();
    let written = callbid_store::export::export_xlsx(&s, &ReportQuery::default(), &mut out)
        .await
        .unwrap();
    assert_eq!(written as usize, total);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(out)).unwrap();
    let mut sheet = String::new();
    zip.by_name("xl/worksheets/sheet1.xml")
        .unwrap()
        .read_to_string(&mut sheet)
        .unwrap();
    // Header + one row per call.
    assert_eq!(sheet.matches("<row ").count(), total + 1);
    // Text is stored as strings, never formulas.
    assert!(!sheet.contains("<f>"));
    let mut book = String::new();
    zip.by_name("xl/workbook.xml")
        .unwrap()
        .read_to_string(&mut book)
        .unwrap();
    assert!(book.contains("name=\"calls\""), "{book}");
}

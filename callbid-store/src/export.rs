//! Streaming CSV and Excel exports of a report.
//!
//! Both exporters walk the report page by page (key-set pagination, [`EXPORT_PAGE`] rows
//! at a time) and write each page before asking for the next, so memory stays bounded
//! whatever the number of calls: CSV rows go straight to the writer; the Excel workbook
//! uses rust_xlsxwriter's constant-memory mode, which flushes each finished row to a
//! temporary file and assembles the `.xlsx` (a zip) at the end.
//!
//! Formula injection: a CSV cell whose text starts with `=`, `+`, `-`, `@`, a tab or a
//! carriage return is prefixed with `'`, so a spreadsheet shows it as text instead of
//! evaluating it (this includes E.164 numbers such as `+15125550123`). Numeric cells the
//! exporter formats itself (amounts, counts) are left as they are. In `.xlsx` every text
//! value is written as a string cell, which Excel never evaluates.

use std::io::Write;

use callbid_core::state::CallRecord;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use crate::error::{Result, StoreError};
use crate::report::{CallReports, ReportQuery};

/// Rows fetched per page while exporting.
pub const EXPORT_PAGE: u32 = 1_000;

/// The exported columns, in order.
pub const COLUMNS: [&str; 23] = [
    "call_id",
    "received_at",
    "status",
    "caller",
    "dialed",
    "campaign",
    "source",
    "zip",
    "service",
    "buyer",
    "price",
    "currency",
    "destination",
    "duration_secs",
    "billable",
    "revenue",
    "payout",
    "margin",
    "fallback",
    "recording_url",
    "pinged",
    "bids",
    "events",
];

/// One exported value.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Empty,
    /// Text from the call (ids, numbers, URLs): neutralized in CSV.
    Text(String),
    /// An exact decimal the exporter formatted.
    Amount(Decimal),
    /// A count.
    Int(u64),
}

fn opt_text<T: ToString>(v: Option<T>) -> Cell {
    v.map_or(Cell::Empty, |v| Cell::Text(v.to_string()))
}

fn cells(r: &CallRecord) -> Vec<Cell> {
    let margin = match (r.revenue, r.payout) {
        (Some(rev), Some(pay)) => rev.checked_sub(&pay).ok().map(|m| m.amount),
        _ => None,
    };
    let currency = r.price.or(r.revenue).or(r.payout).map(|m| m.currency);
    vec![
        Cell::Text(r.call_id.to_string()),
        Cell::Text(
            r.received_at
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ),
        Cell::Text(r.status.as_str().to_string()),
        opt_text(r.caller.as_ref()),
        opt_text(r.dialed.as_ref()),
        opt_text(r.campaign.as_ref()),
        opt_text(r.source.as_ref()),
        opt_text(r.zip.as_ref().map(|z| z.as_str())),
        opt_text(r.service.as_ref()),
        opt_text(r.buyer.as_ref()),
        r.price.map_or(Cell::Empty, |m| Cell::Amount(m.amount)),
        opt_text(currency),
        opt_text(r.destination.as_ref()),
        r.duration_secs.map_or(Cell::Empty, Cell::Int),
        opt_text(r.billable),
        r.revenue.map_or(Cell::Empty, |m| Cell::Amount(m.amount)),
        r.payout.map_or(Cell::Empty, |m| Cell::Amount(m.amount)),
        margin.map_or(Cell::Empty, Cell::Amount),
        opt_text(r.fallback.as_ref()),
        opt_text(r.recording_url.as_ref()),
        Cell::Int(u64::from(r.pinged)),
        Cell::Int(u64::from(r.bids)),
        Cell::Int(u64::from(r.events)),
    ]
}

/// Prefixes `'` to text a spreadsheet would otherwise evaluate as a formula.
pub fn neutralize(text: &str) -> std::borrow::Cow<'_, str> {
    match text.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{text}").into(),
        _ => text.into(),
    }
}

fn csv_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Export {
        format: "csv",
        message: e.to_string(),
    }
}

fn xlsx_err(e: XlsxError) -> StoreError {
    StoreError::Export {
        format: "xlsx",
        message: e.to_string(),
    }
}

/// Streams every call matching `query` (its sort and filter; its `limit` is ignored in
/// favour of [`EXPORT_PAGE`]) as RFC 4180 CSV with a header row. Returns the number of
/// calls written.
pub async fn export_csv<R, W>(reports: &R, query: &ReportQuery, writer: W) -> Result<u64>
where
    R: CallReports + ?Sized,
    W: Write,
{
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(writer);
    w.write_record(COLUMNS).map_err(csv_err)?;
    let mut q = query.clone().with_limit(EXPORT_PAGE).after(None);
    let mut n = 0u64;
    loop {
        let page = reports.page(&q).await?;
        for r in &page.rows {
            let row: Vec<String> = cells(r)
                .into_iter()
                .map(|c| match c {
                    Cell::Empty => String::new(),
                    Cell::Text(t) => neutralize(&t).into_owned(),
                    Cell::Amount(d) => d.to_string(),
                    Cell::Int(i) => i.to_string(),
                })
                .collect();
            w.write_record(&row).map_err(csv_err)?;
            n += 1;
        }
        match page.next {
            Some(c) => q.after = Some(c),
            None => break,
        }
    }
    w.flush().map_err(csv_err)?;
    Ok(n)
}

/// Excel's row limit per worksheet.
const MAX_ROWS: u32 = 1_048_576;

fn new_sheet(wb: &mut Workbook, index: usize, bold: &Format) -> Result<()> {
    let ws = wb.add_worksheet_with_constant_memory().map_err(xlsx_err)?;
    let name = if index == 0 {
        "calls".to_string()
    } else {
        format!("calls ({})", index + 1)
    };
    ws.set_name(name).map_err(xlsx_err)?;
    for (c, h) in COLUMNS.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *h, bold)
            .map_err(xlsx_err)?;
    }
    Ok(())
}

fn write_cell(ws: &mut Worksheet, row: u32, col: u16, cell: Cell, money: &Format) -> Result<()> {
    match cell {
        Cell::Empty => {}
        Cell::Text(t) => {
            ws.write_string(row, col, t).map_err(xlsx_err)?;
        }
        Cell::Amount(d) => {
            // A number when f64 holds it exactly enough to print back the same decimal
            // (any realistic money amount); otherwise the exact text.
            match d
                .to_f64()
                .filter(|f| Decimal::try_from(*f).ok() == Some(d.normalize()))
            {
                Some(f) => ws
                    .write_number_with_format(row, col, f, money)
                    .map(|_| ())
                    .map_err(xlsx_err)?,
                None => ws
                    .write_string(row, col, d.to_string())
                    .map(|_| ())
                    .map_err(xlsx_err)?,
            }
        }
        Cell::Int(i) => {
            ws.write_number(row, col, i as f64).map_err(xlsx_err)?;
        }
    }
    Ok(())
}

/// Streams every call matching `query` into an `.xlsx` workbook (sheet `calls`, with
/// more sheets past Excel's 1 048 576 rows) written to `writer` at the end. Memory stays
/// bounded: rows are flushed to a temporary file as they are written (rust_xlsxwriter's
/// constant-memory mode). Returns the number of calls written.
pub async fn export_xlsx<R, W>(reports: &R, query: &ReportQuery, writer: W) -> Result<u64>
where
    R: CallReports + ?Sized,
    W: Write + Send,
{
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    let money = Format::new().set_num_format("0.00####");
    let mut sheet = 0usize;
    new_sheet(&mut wb, sheet, &bold)?;
    let mut row = 1u32;
    let mut q = query.clone().with_limit(EXPORT_PAGE).after(None);
    let mut n = 0u64;
    loop {
        let page = reports.page(&q).await?;
        for r in &page.rows {
            if row == MAX_ROWS {
                sheet += 1;
                new_sheet(&mut wb, sheet, &bold)?;
                row = 1;
            }
            let ws = wb.worksheet_from_index(sheet).map_err(xlsx_err)?;
            for (c, cell) in cells(r).into_iter().enumerate() {
                write_cell(ws, row, c as u16, cell, &money)?;
            }
            row += 1;
            n += 1;
        }
        match page.next {
            Some(c) => q.after = Some(c),
            None => break,
        }
    }
    wb.save_to_writer(writer).map_err(xlsx_err)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neutralizes_formula_starts() {
        for (i, o) in [
            ("=1+1", "'=1+1"),
            ("+15125550123", "'+15125550123"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("plain", "plain"),
            ("", ""),
        ] {
            assert_eq!(neutralize(i), o);
        }
    }
}

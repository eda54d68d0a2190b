//! Reports over the `calls` summary table: filters, sorting, keyset pagination and
//! aggregates. The SQL is built here once and run by every backend.
//!
//! Pagination is by key set, not offset: a page asks for rows strictly after the
//! [`Cursor`] of the previous page's last row, so page 10 000 costs what page 1 costs and
//! rows inserted meanwhile never shift or repeat a page.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use callbid_core::state::{CallRecord, CallStatus};
use callbid_core::{BuyerId, CampaignId, Currency, ServiceType, SourceId, ValidationError, Zip};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use crate::codec::{bound_to_micros, from_micros, to_ns, NS_PER_DAY};
use crate::error::{Result, StoreError};

/// Which calls a report covers. Every list is "any of"; every set field must match.
///
/// ```
/// use callbid_store::ReportFilter;
/// let f = ReportFilter::from_pairs([("status", "completed,missed"), ("zip", "78701"),
///     ("from", "2026-11-01"), ("max_price", "50")]).unwrap();
/// assert_eq!(f.statuses.len(), 2);
/// let err = ReportFilter::from_pairs([("zip", "7870")]).unwrap_err().to_string();
/// assert!(err.contains("zip") && err.contains("7870"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReportFilter {
    /// Calls received at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Calls received strictly before this instant.
    pub to: Option<DateTime<Utc>>,
    /// Caller ZIP codes.
    pub zips: Vec<Zip>,
    /// Service types.
    pub services: Vec<ServiceType>,
    /// Winning buyers.
    pub buyers: Vec<BuyerId>,
    /// Derived statuses.
    pub statuses: Vec<CallStatus>,
    /// Campaigns.
    pub campaigns: Vec<CampaignId>,
    /// Traffic sources.
    pub sources: Vec<SourceId>,
    /// Winning price at least this (calls without a price are excluded).
    pub min_price: Option<Decimal>,
    /// Winning price at most this (calls without a price are excluded).
    pub max_price: Option<Decimal>,
    /// Currency of the call's money.
    pub currency: Option<Currency>,
}

fn parse_instant(field: &'static str, v: &str, end_of_day: bool) -> Result<DateTime<Utc>> {
    let t = v.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|_| {
        ValidationError::new(
            field,
            v,
            "expected RFC 3339 (2026-11-21T15:00:00Z) or YYYY-MM-DD",
        )
    })?;
    let date = if end_of_day {
        date.succ_opt()
            .ok_or_else(|| ValidationError::new(field, v, "date out of range"))?
    } else {
        date
    };
    Ok(date.and_time(chrono::NaiveTime::MIN).and_utc())
}

fn parse_list<T>(
    field: &'static str,
    v: &str,
    parse: impl Fn(&str) -> std::result::Result<T, ValidationError>,
) -> Result<Vec<T>> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            parse(s).map_err(|e| {
                // Name the filter field and the whole value, keep the type's reason.
                ValidationError::new(field, s, e.reason).into()
            })
        })
        .collect()
}

fn parse_amount(field: &'static str, v: &str) -> Result<Decimal> {
    let m = callbid_core::Money::parse_amount(field, v, Currency::USD)?;
    bound_to_micros(field, m.amount)?;
    Ok(m.amount)
}

impl ReportFilter {
    /// Every call.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses query-string style pairs, as a dashboard sends them. Keys: `from`, `to`
    /// (RFC 3339, or `YYYY-MM-DD`: `to` then includes that whole day), `zip`, `service`,
    /// `buyer`, `status`, `campaign`, `source` (comma-separated or repeated), `min_price`,
    /// `max_price`, `currency`. Empty values are ignored. Unknown keys and bad values are
    /// errors naming the field and the value.
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut f = ReportFilter::default();
        for (k, v) in pairs {
            let (k, v) = (k.as_ref(), v.as_ref());
            if v.trim().is_empty() {
                continue;
            }
            match k {
                "from" => f.from = Some(parse_instant("from", v, false)?),
                "to" => f.to = Some(parse_instant("to", v, true)?),
                "zip" => f.zips.extend(parse_list("zip", v, Zip::parse)?),
                "service" => f
                    .services
                    .extend(parse_list("service", v, |s| ServiceType::new(s))?),
                "buyer" => f.buyers.extend(parse_list("buyer", v, |s| BuyerId::new(s))?),
                "status" => f.statuses.extend(parse_list("status", v, |s| {
                    CallStatus::parse(s).ok_or_else(|| {
                        ValidationError::new(
                            "status",
                            s,
                            "expected incoming, forwarded, missed, rejected, fallback or completed",
                        )
                    })
                })?),
                "campaign" => f
                    .campaigns
                    .extend(parse_list("campaign", v, |s| CampaignId::new(s))?),
                "source" => f.sources.extend(parse_list("source", v, |s| SourceId::new(s))?),
                "min_price" => f.min_price = Some(parse_amount("min_price", v)?),
                "max_price" => f.max_price = Some(parse_amount("max_price", v)?),
                "currency" => f.currency = Some(Currency::parse(v)?),
                other => {
                    return Err(ValidationError::new(
                        "filter",
                        other,
                        "unknown filter (from, to, zip, service, buyer, status, campaign, source, min_price, max_price, currency)",
                    )
                    .into())
                }
            }
        }
        f.validate()?;
        Ok(f)
    }

    /// Checks that ranges are not inverted and bounds are storable.
    pub fn validate(&self) -> Result<()> {
        if let (Some(a), Some(b)) = (self.from, self.to) {
            if a >= b {
                return Err(ValidationError::new(
                    "to",
                    b.to_rfc3339(),
                    format!("must be after from ({})", a.to_rfc3339()),
                )
                .into());
            }
        }
        if let Some(a) = self.min_price {
            bound_to_micros("min_price", a)?;
        }
        if let Some(b) = self.max_price {
            bound_to_micros("max_price", b)?;
        }
        if let (Some(a), Some(b)) = (self.min_price, self.max_price) {
            if a > b {
                return Err(ValidationError::new(
                    "max_price",
                    b.to_string(),
                    format!("must be at least min_price ({a})"),
                )
                .into());
            }
        }
        Ok(())
    }

    /// Restricts to `[from, to)`.
    pub fn with_range(mut self, from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        self.from = Some(from);
        self.to = Some(to);
        self
    }
    /// Adds a ZIP.
    pub fn with_zip(mut self, zip: Zip) -> Self {
        self.zips.push(zip);
        self
    }
    /// Adds a service type.
    pub fn with_service(mut self, service: ServiceType) -> Self {
        self.services.push(service);
        self
    }
    /// Adds a buyer.
    pub fn with_buyer(mut self, buyer: BuyerId) -> Self {
        self.buyers.push(buyer);
        self
    }
    /// Adds a status.
    pub fn with_status(mut self, status: CallStatus) -> Self {
        self.statuses.push(status);
        self
    }
    /// Adds a campaign.
    pub fn with_campaign(mut self, campaign: CampaignId) -> Self {
        self.campaigns.push(campaign);
        self
    }
    /// Adds a source.
    pub fn with_source(mut self, source: SourceId) -> Self {
        self.sources.push(source);
        self
    }
    /// Restricts the winning price to `[min, max]` (either bound optional).
    pub fn with_price(mut self, min: Option<Decimal>, max: Option<Decimal>) -> Self {
        self.min_price = min;
        self.max_price = max;
        self
    }
    /// Restricts to one currency.
    pub fn with_currency(mut self, currency: Currency) -> Self {
        self.currency = Some(currency);
        self
    }
}

/// The column a report is sorted by (ties always break by call id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SortKey {
    /// When the call arrived.
    #[default]
    ReceivedAt,
    /// The winning price (calls without one sort as the smallest).
    Price,
    /// Buyer revenue (calls without one sort as the smallest).
    Revenue,
    /// Talk time (calls without one sort as the smallest).
    Duration,
}

impl SortKey {
    fn column(self) -> &'static str {
        match self {
            SortKey::ReceivedAt => "received_ns",
            SortKey::Price => "price_micros",
            SortKey::Revenue => "revenue_micros",
            SortKey::Duration => "duration_secs",
        }
    }
    fn nullable(self) -> bool {
        !matches!(self, SortKey::ReceivedAt)
    }
    /// The name used in cursors and query strings.
    pub fn as_str(self) -> &'static str {
        match self {
            SortKey::ReceivedAt => "received_at",
            SortKey::Price => "price",
            SortKey::Revenue => "revenue",
            SortKey::Duration => "duration",
        }
    }
    fn value_of(self, r: &CallRecord) -> Result<Option<i64>> {
        use crate::codec::to_micros;
        Ok(match self {
            SortKey::ReceivedAt => Some(to_ns("received_at", r.received_at)?),
            SortKey::Price => r.price.map(|m| to_micros("price", m.amount)).transpose()?,
            SortKey::Revenue => r
                .revenue
                .map(|m| to_micros("revenue", m.amount))
                .transpose()?,
            SortKey::Duration => r
                .duration_secs
                .map(|d| i64::try_from(d).unwrap_or(i64::MAX)),
        })
    }
}

impl FromStr for SortKey {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "received_at" => SortKey::ReceivedAt,
            "price" => SortKey::Price,
            "revenue" => SortKey::Revenue,
            "duration" => SortKey::Duration,
            _ => {
                return Err(ValidationError::new(
                    "sort",
                    s,
                    "expected received_at, price, revenue or duration",
                )
                .into())
            }
        })
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SortOrder {
    /// Smallest first.
    Asc,
    /// Largest (newest) first.
    #[default]
    Desc,
}

impl FromStr for SortOrder {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "asc" => Ok(SortOrder::Asc),
            "desc" => Ok(SortOrder::Desc),
            _ => Err(ValidationError::new("order", s, "expected asc or desc").into()),
        }
    }
}

/// Where the previous page ended. Opaque to clients: pass [`Cursor::to_string`] back and
/// parse it with [`Cursor::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor {
    sort: SortKey,
    value: Option<i64>,
    call_id: String,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value {
            Some(v) => write!(f, "{}:{}:{}", self.sort.as_str(), v, self.call_id),
            None => write!(f, "{}:~:{}", self.sort.as_str(), self.call_id),
        }
    }
}

impl FromStr for Cursor {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || ValidationError::new("cursor", s, "not a cursor returned by a report page");
        let mut it = s.splitn(3, ':');
        let (Some(k), Some(v), Some(id)) = (it.next(), it.next(), it.next()) else {
            return Err(bad().into());
        };
        let sort = k.parse::<SortKey>().map_err(|_| bad())?;
        let value = match v {
            "" => {
                return Err(ValidationError::new(
                    "cursor",
                    s,
                    format!("the {} value is missing", sort.as_str()),
                )
                .into())
            }
            // `~` marks a row without a value, which only a nullable sort has.
            "~" if !sort.nullable() => {
                return Err(ValidationError::new(
                    "cursor",
                    s,
                    format!(
                        "the {} value is missing, and every call has one",
                        sort.as_str()
                    ),
                )
                .into())
            }
            "~" => None,
            v => Some(v.parse::<i64>().map_err(|_| bad())?),
        };
        if id.is_empty() {
            return Err(bad().into());
        }
        Ok(Cursor {
            sort,
            value,
            call_id: id.to_string(),
        })
    }
}

/// One page request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReportQuery {
    /// Which calls.
    pub filter: ReportFilter,
    /// Sorted by.
    pub sort: SortKey,
    /// Direction.
    pub order: SortOrder,
    /// Rows per page, 1 to [`ReportQuery::MAX_LIMIT`].
    pub limit: u32,
    /// Continue after this cursor (from the previous page).
    pub after: Option<Cursor>,
}

impl Default for ReportQuery {
    fn default() -> Self {
        ReportQuery {
            filter: ReportFilter::default(),
            sort: SortKey::default(),
            order: SortOrder::default(),
            limit: 50,
            after: None,
        }
    }
}

impl ReportQuery {
    /// The largest page.
    pub const MAX_LIMIT: u32 = 10_000;

    /// The first page of newest calls matching `filter`, 50 per page.
    pub fn new(filter: ReportFilter) -> Self {
        ReportQuery {
            filter,
            ..Self::default()
        }
    }
    /// Sets the sort.
    pub fn sorted_by(mut self, sort: SortKey, order: SortOrder) -> Self {
        self.sort = sort;
        self.order = order;
        self
    }
    /// Sets the page size.
    pub fn with_limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }
    /// Continues after a cursor.
    pub fn after(mut self, cursor: Option<Cursor>) -> Self {
        self.after = cursor;
        self
    }

    /// Checks the limit, the filter, and that the cursor belongs to this sort.
    pub fn validate(&self) -> Result<()> {
        if self.limit == 0 || self.limit > Self::MAX_LIMIT {
            return Err(ValidationError::new(
                "limit",
                self.limit.to_string(),
                format!("must be 1 to {}", Self::MAX_LIMIT),
            )
            .into());
        }
        if let Some(c) = &self.after {
            if c.sort != self.sort {
                return Err(ValidationError::new(
                    "cursor",
                    c.to_string(),
                    format!(
                        "belongs to sort {}, not {}",
                        c.sort.as_str(),
                        self.sort.as_str()
                    ),
                )
                .into());
            }
        }
        self.filter.validate()
    }
}

/// A page of calls.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReportPage {
    /// The calls, in the requested order.
    pub rows: Vec<CallRecord>,
    /// The cursor for the next page; `None` on the last page.
    pub next: Option<Cursor>,
}

/// How aggregates are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GroupBy {
    /// One row for everything that matches.
    Total,
    /// Per winning buyer.
    Buyer,
    /// Per service type.
    Service,
    /// Per UTC day (`YYYY-MM-DD`).
    Day,
    /// Per status.
    Status,
    /// Per ZIP.
    Zip,
    /// Per campaign.
    Campaign,
    /// Per source.
    Source,
}

impl GroupBy {
    fn expr(self) -> &'static str {
        match self {
            GroupBy::Total => "0",
            GroupBy::Buyer => "buyer",
            GroupBy::Service => "service",
            GroupBy::Day => "day",
            GroupBy::Status => "status",
            GroupBy::Zip => "zip",
            GroupBy::Campaign => "campaign",
            GroupBy::Source => "source",
        }
    }
}

impl GroupBy {
    /// Whether the group is a text column (ordered by bytes on every backend).
    fn text(self) -> bool {
        !matches!(self, GroupBy::Total | GroupBy::Day)
    }
}

impl FromStr for GroupBy {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "total" => GroupBy::Total,
            "buyer" => GroupBy::Buyer,
            "service" => GroupBy::Service,
            "day" => GroupBy::Day,
            "status" => GroupBy::Status,
            "zip" => GroupBy::Zip,
            "campaign" => GroupBy::Campaign,
            "source" => GroupBy::Source,
            _ => {
                return Err(ValidationError::new(
                    "group_by",
                    s,
                    "expected total, buyer, service, day, status, zip, campaign or source",
                )
                .into())
            }
        })
    }
}

/// Aggregates of one group. Money is exact; rates are rounded to 4 decimal places.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AggregateRow {
    /// The group's value (buyer id, service, `YYYY-MM-DD`, …); `None` for calls without
    /// one (e.g. no winning buyer) and for [`GroupBy::Total`].
    pub group: Option<String>,
    /// Calls.
    pub calls: u64,
    /// Calls a buyer accepted (a destination was given).
    pub accepted: u64,
    /// Calls whose status is fallback.
    pub fallbacks: u64,
    /// Calls with a winning bid.
    pub bids: u64,
    /// `accepted / calls`.
    pub accept_rate: Decimal,
    /// `fallbacks / calls`.
    pub fallback_rate: Decimal,
    /// Sum of buyer revenue.
    pub revenue: Decimal,
    /// Sum of publisher payouts.
    pub payout: Decimal,
    /// `revenue - payout`.
    pub margin: Decimal,
    /// Average winning bid, when there was one.
    pub average_bid: Option<Decimal>,
    /// The currency of the money above (`None` when the group has no money).
    pub currency: Option<Currency>,
}

/// Reports over the call log, implemented by every durable store.
#[async_trait]
pub trait CallReports: Send + Sync + fmt::Debug {
    /// One page of calls.
    async fn page(&self, query: &ReportQuery) -> Result<ReportPage>;
    /// Aggregates per group, ordered by group.
    async fn aggregate(
        &self,
        filter: &ReportFilter,
        group_by: GroupBy,
    ) -> Result<Vec<AggregateRow>>;
}

// ---------------------------------------------------------------------------------------
// SQL building, shared by the backends.

/// A bound parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Param {
    Int(i64),
    Text(String),
}

/// Placeholder syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres,
}

impl Dialect {
    /// The `i`-th (1-based) bind placeholder.
    pub(crate) fn placeholder(self, i: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{i}"),
            Dialect::Postgres => format!("${i}"),
        }
    }
}

/// A statement and its parameters.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    pub text: String,
    pub params: Vec<Param>,
    dialect: Dialect,
}

impl Sql {
    fn new(dialect: Dialect) -> Self {
        Sql {
            text: String::new(),
            params: Vec::new(),
            dialect,
        }
    }
    fn bind(&mut self, p: Param) -> String {
        self.params.push(p);
        self.dialect.placeholder(self.params.len())
    }
    fn in_list<T: AsRef<str>>(&mut self, conds: &mut Vec<String>, col: &str, values: &[T]) {
        if values.is_empty() {
            return;
        }
        let ph: Vec<String> = values
            .iter()
            .map(|v| self.bind(Param::Text(v.as_ref().to_string())))
            .collect();
        conds.push(format!("{col} IN ({})", ph.join(", ")));
    }

    fn filter(&mut self, f: &ReportFilter) -> Result<Vec<String>> {
        let mut c = Vec::new();
        if let Some(from) = f.from {
            let p = self.bind(Param::Int(to_ns("from", from)?));
            c.push(format!("received_ns >= {p}"));
        }
        if let Some(to) = f.to {
            let p = self.bind(Param::Int(to_ns("to", to)?));
            c.push(format!("received_ns < {p}"));
        }
        let zips: Vec<&str> = f.zips.iter().map(|z| z.as_str()).collect();
        self.in_list(&mut c, "zip", &zips);
        let services: Vec<&str> = f.services.iter().map(|s| s.as_str()).collect();
        self.in_list(&mut c, "service", &services);
        self.in_list(&mut c, "buyer", &f.buyers);
        let st: Vec<&str> = f.statuses.iter().map(|s| s.as_str()).collect();
        self.in_list(&mut c, "status", &st);
        self.in_list(&mut c, "campaign", &f.campaigns);
        self.in_list(&mut c, "source", &f.sources);
        if let Some(min) = f.min_price {
            let p = self.bind(Param::Int(bound_to_micros("min_price", min)?));
            c.push(format!("price_micros >= {p}"));
        }
        if let Some(max) = f.max_price {
            let p = self.bind(Param::Int(bound_to_micros("max_price", max)?));
            c.push(format!("price_micros <= {p}"));
        }
        if let Some(cur) = f.currency {
            let p = self.bind(Param::Text(cur.as_str().to_string()));
            c.push(format!("currency = {p}"));
        }
        Ok(c)
    }
}

/// `SELECT record FROM calls … LIMIT limit+1` for a page (one extra row tells whether
/// there is a next page).
pub(crate) fn page_sql(dialect: Dialect, q: &ReportQuery) -> Result<Sql> {
    q.validate()?;
    let mut sql = Sql::new(dialect);
    let mut conds = sql.filter(&q.filter)?;
    let col = q.sort.column();
    let (cmp, dir) = match q.order {
        SortOrder::Asc => (">", "ASC"),
        SortOrder::Desc => ("<", "DESC"),
    };
    // Calls without a value (no price, no revenue, no duration) sort as the smallest
    // values: first ascending, last descending. That is SQLite's native order, so its
    // indexes serve both directions; PostgreSQL's indexes on those columns are built
    // `NULLS FIRST` to match.
    let nullable = q.sort.nullable();
    if let Some(c) = &q.after {
        let id = sql.bind(Param::Text(c.call_id.clone()));
        match (c.value, nullable, q.order) {
            (Some(v), false, _) | (Some(v), true, SortOrder::Asc) => {
                let v = sql.bind(Param::Int(v));
                conds.push(format!("({col}, call_id) {cmp} ({v}, {id})"));
            }
            (Some(v), true, SortOrder::Desc) => {
                let v = sql.bind(Param::Int(v));
                conds.push(format!("(({col}, call_id) < ({v}, {id}) OR {col} IS NULL)"));
            }
            (None, _, SortOrder::Asc) => conds.push(format!(
                "(({col} IS NULL AND call_id > {id}) OR {col} IS NOT NULL)"
            )),
            (None, _, SortOrder::Desc) => conds.push(format!("({col} IS NULL AND call_id < {id})")),
        }
    }
    let nulls = match (nullable, dialect, q.order) {
        (true, Dialect::Postgres, SortOrder::Asc) => " NULLS FIRST",
        (true, Dialect::Postgres, SortOrder::Desc) => " NULLS LAST",
        _ => "",
    };
    let limit = sql.bind(Param::Int(i64::from(q.limit) + 1));
    sql.text = format!(
        "SELECT record FROM calls{} ORDER BY {col} {dir}{nulls}, call_id {dir} LIMIT {limit}",
        where_clause(&conds)
    );
    Ok(sql)
}

fn where_clause(conds: &[String]) -> String {
    if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    }
}

/// Turns `limit+1` records into a page.
pub(crate) fn finish_page(q: &ReportQuery, mut rows: Vec<CallRecord>) -> Result<ReportPage> {
    let more = rows.len() > q.limit as usize;
    rows.truncate(q.limit as usize);
    let next = match (more, rows.last()) {
        (true, Some(last)) => Some(Cursor {
            sort: q.sort,
            value: q.sort.value_of(last)?,
            call_id: last.call_id.as_str().to_string(),
        }),
        _ => None,
    };
    Ok(ReportPage { rows, next })
}

/// The aggregate statement. Columns: group (text or NULL), calls, accepted, fallbacks,
/// bids, price sum, revenue sum, payout sum (sums as text, exact), distinct currencies,
/// min currency.
pub(crate) fn aggregate_sql(dialect: Dialect, f: &ReportFilter, g: GroupBy) -> Result<Sql> {
    f.validate()?;
    let mut sql = Sql::new(dialect);
    let conds = sql.filter(f)?;
    // Groups come back in SQLite's order on both backends: text by bytes (PostgreSQL
    // would otherwise sort, and MIN, by the database's collation, e.g. `a` before `B`
    // under en_US), and calls without a value first.
    let (e, nulls) = match (dialect, g.text()) {
        (Dialect::Postgres, true) => (format!("{} COLLATE \"C\"", g.expr()), " NULLS FIRST"),
        (Dialect::Postgres, false) => (g.expr().to_string(), " NULLS FIRST"),
        (Dialect::Sqlite, _) => (g.expr().to_string(), ""),
    };
    let currency = match dialect {
        Dialect::Postgres => "currency COLLATE \"C\"",
        Dialect::Sqlite => "currency",
    };
    let group_text = if g == GroupBy::Total {
        "CAST(NULL AS TEXT)".to_string()
    } else {
        format!("CAST({e} AS TEXT)")
    };
    let (group_by, order_by) = if g == GroupBy::Total {
        (String::new(), String::new())
    } else {
        (format!(" GROUP BY {e}"), format!(" ORDER BY {e}{nulls}"))
    };
    sql.text = format!(
        "SELECT {group_text}, COUNT(*), COUNT(CASE WHEN accepted = 1 THEN 1 END), \
         COUNT(CASE WHEN status = 'fallback' THEN 1 END), \
         COUNT(price_micros), CAST(COALESCE(SUM(price_micros), 0) AS TEXT), \
         CAST(COALESCE(SUM(revenue_micros), 0) AS TEXT), \
         CAST(COALESCE(SUM(payout_micros), 0) AS TEXT), \
         COUNT(DISTINCT {currency}), MIN({currency}) \
         FROM calls{}{group_by}{order_by}",
        where_clause(&conds)
    );
    Ok(sql)
}

/// One raw aggregate row as read from the database.
#[derive(Debug, Clone)]
pub(crate) struct RawAggregate {
    pub group: Option<String>,
    pub calls: i64,
    pub accepted: i64,
    pub fallbacks: i64,
    pub bids: i64,
    pub price_sum: String,
    pub revenue_sum: String,
    pub payout_sum: String,
    pub currencies: i64,
    pub currency: Option<String>,
}

fn ratio(n: u64, d: u64) -> Decimal {
    if d == 0 {
        return Decimal::ZERO;
    }
    (Decimal::from(n) / Decimal::from(d))
        .round_dp_with_strategy(4, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

fn sum(op: &'static str, s: &str) -> Result<Decimal> {
    s.trim()
        .parse::<i128>()
        .map(from_micros)
        .map_err(|e| StoreError::corrupt(op, format!("bad sum {s:?}: {e}")))
}

impl RawAggregate {
    pub(crate) fn finish(self, g: GroupBy) -> Result<AggregateRow> {
        const OP: &str = "aggregate";
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        if self.currencies > 1 {
            return Err(ValidationError::new(
                "currency",
                self.group.clone().unwrap_or_else(|| "all calls".into()),
                "the group holds calls in several currencies; filter by currency",
            )
            .into());
        }
        let group = match (g, self.group) {
            (GroupBy::Day, Some(d)) => {
                let day: i64 = d
                    .parse()
                    .map_err(|e| StoreError::corrupt(OP, format!("bad day {d:?}: {e}")))?;
                let at = crate::codec::from_ns(day.saturating_mul(NS_PER_DAY));
                Some(at.format("%Y-%m-%d").to_string())
            }
            (_, g) => g,
        };
        let calls = n(self.calls);
        let accepted = n(self.accepted);
        let fallbacks = n(self.fallbacks);
        let bids = n(self.bids);
        let price = sum(OP, &self.price_sum)?;
        let revenue = sum(OP, &self.revenue_sum)?;
        let payout = sum(OP, &self.payout_sum)?;
        let currency = self
            .currency
            .map(|c| Currency::parse(&c).map_err(|e| StoreError::corrupt(OP, e)))
            .transpose()?;
        Ok(AggregateRow {
            group,
            calls,
            accepted,
            fallbacks,
            bids,
            accept_rate: ratio(accepted, calls),
            fallback_rate: ratio(fallbacks, calls),
            revenue,
            payout,
            margin: revenue - payout,
            average_bid: (bids > 0).then(|| {
                (price / Decimal::from(bids))
                    .round_dp_with_strategy(6, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
                    .normalize()
            }),
            currency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn filter_pairs_parse_and_name_bad_fields() {
        let f = ReportFilter::from_pairs([
            ("from", "2026-11-01"),
            ("to", "2026-11-01"),
            ("buyer", "a,b"),
            ("buyer", "c"),
            ("min_price", "10.5"),
            ("campaign", ""),
        ])
        .unwrap();
        assert_eq!(f.buyers.len(), 3);
        assert_eq!(f.min_price, Some(dec!(10.5)));
        assert_eq!(
            (f.to.unwrap() - f.from.unwrap()).num_hours(),
            24,
            "to=YYYY-MM-DD includes that day"
        );
        for (k, v, field) in [
            ("status", "done", "status"),
            ("from", "yesterday", "from"),
            ("min_price", "1e3", "min_price"),
            ("min_price", "0.0000001", "min_price"),
            ("service", "pest$", "service"),
            ("colour", "red", "filter"),
            ("currency", "dollars", "currency"),
        ] {
            match ReportFilter::from_pairs([(k, v)]) {
                Err(StoreError::Invalid(e)) => {
                    assert_eq!(e.field, field, "{k}={v}");
                    let shown = if field == "filter" { k } else { v };
                    assert!(e.to_string().contains(shown), "{e}");
                }
                other => panic!("{k}={v}: {other:?}"),
            }
        }
        let inverted = ReportFilter::from_pairs([("min_price", "5"), ("max_price", "4")]);
        assert!(matches!(inverted, Err(StoreError::Invalid(e)) if e.field == "max_price"));
        let inverted = ReportFilter::from_pairs([("from", "2026-11-02"), ("to", "2026-10-01")]);
        assert!(matches!(inverted, Err(StoreError::Invalid(e)) if e.field == "to"));
    }

    #[test]
    fn cursor_round_trip_and_rejects_garbage() {
        for c in [
            Cursor {
                sort: SortKey::Price,
                value: None,
                call_id: "CA:1".into(),
            },
            Cursor {
                sort: SortKey::ReceivedAt,
                value: Some(-5),
                call_id: "x".into(),
            },
        ] {
            assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        }
        for bad in [
            "",
            "price",
            "price:1",
            "price:x:CA",
            "nope:1:CA",
            "price:1:",
        ] {
            assert!(
                matches!(bad.parse::<Cursor>(), Err(StoreError::Invalid(e)) if e.field == "cursor"),
                "{bad}"
            );
        }
        // A missing value: empty, or `~` on a sort every call has a value for.
        for bad in ["received_at:~:CA1", "received_at::CA1", "price::CA1"] {
            match bad.parse::<Cursor>() {
                Err(StoreError::Invalid(e)) => {
                    assert_eq!(e.field, "cursor");
                    let shown = e.to_string();
                    assert!(shown.contains(bad) && shown.contains("missing"), "{shown}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        for nullable in ["price:~:CA1", "revenue:~:CA1", "duration:~:CA1"] {
            assert!(nullable.parse::<Cursor>().is_ok(), "{nullable}");
        }
    }

    #[test]
    fn query_validation() {
        let q = ReportQuery::default().with_limit(0);
        assert!(matches!(q.validate(), Err(StoreError::Invalid(e)) if e.field == "limit"));
        let q = ReportQuery::default()
            .sorted_by(SortKey::Price, SortOrder::Asc)
            .after(Some("received_at:1:CA".parse().unwrap()));
        assert!(matches!(q.validate(), Err(StoreError::Invalid(e)) if e.field == "cursor"));
    }

    #[test]
    fn page_sql_uses_placeholders_per_dialect() {
        let f = ReportFilter::new()
            .with_status(CallStatus::Completed)
            .with_price(Some(dec!(1)), None);
        let q = ReportQuery::new(f).after(Some("received_at:10:CA9".parse().unwrap()));
        let s = page_sql(Dialect::Sqlite, &q).unwrap();
        assert!(s.text.contains("status IN (?1)"), "{}", s.text);
        assert!(
            s.text.contains("(received_ns, call_id) < (?4, ?3)"),
            "{}",
            s.text
        );
        assert_eq!(s.params.len(), 5);
        let p = page_sql(Dialect::Postgres, &q).unwrap();
        assert!(p.text.contains("status IN ($1)") && p.text.contains("LIMIT $5"));
    }

    #[test]
    fn postgres_aggregates_order_text_by_bytes_nulls_first() {
        let f = ReportFilter::new();
        let pg = aggregate_sql(Dialect::Postgres, &f, GroupBy::Buyer)
            .unwrap()
            .text;
        assert!(pg.contains("GROUP BY buyer COLLATE \"C\""), "{pg}");
        assert!(
            pg.contains("ORDER BY buyer COLLATE \"C\" NULLS FIRST"),
            "{pg}"
        );
        assert!(pg.contains("MIN(currency COLLATE \"C\")"), "{pg}");
        let day = aggregate_sql(Dialect::Postgres, &f, GroupBy::Day)
            .unwrap()
            .text;
        assert!(day.contains("ORDER BY day NULLS FIRST"), "{day}");
        let lite = aggregate_sql(Dialect::Sqlite, &f, GroupBy::Buyer)
            .unwrap()
            .text;
        assert!(lite.ends_with("GROUP BY buyer ORDER BY buyer"), "{lite}");
    }

    #[test]
    fn aggregates_are_exact_and_refuse_mixed_currency() {
        let raw = RawAggregate {
            group: Some("20413".into()),
            calls: 3,
            accepted: 2,
            fallbacks: 1,
            bids: 3,
            price_sum: "100000000".into(),
            revenue_sum: "85000000".into(),
            payout_sum: "59500000".into(),
            currencies: 1,
            currency: Some("USD".into()),
        };
        let r = raw.clone().finish(GroupBy::Day).unwrap();
        assert_eq!(r.group.as_deref(), Some("2025-11-21"));
        assert_eq!(r.accept_rate, dec!(0.6667));
        assert_eq!(r.margin, dec!(25.5));
        assert_eq!(r.average_bid, Some(dec!(33.333333)));
        let mixed = RawAggregate {
            currencies: 2,
            ..raw
        };
        assert!(
            matches!(mixed.finish(GroupBy::Day), Err(StoreError::Invalid(e)) if e.field == "currency")
        );
    }
}

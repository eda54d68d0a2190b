// callbid operator dashboard. Plain JS, no build step. Every value from the server is
// put on the page with textContent (never innerHTML), so buyer names, reasons and ids
// cannot inject markup.
"use strict";
// The prefix the server is mounted under (Router::nest), from the page's meta tag.
// "1 call", "2 calls".
function plural(n, word) { return Number(n) === 1 ? word : word + "s"; }
const BASE = (document.querySelector('meta[name="callbid-base"]') || {}).content || "";
(function () {
  const $ = (id) => document.getElementById(id);
  const FILTER_FIELDS = [
    ["from", "f-from"], ["to", "f-to"], ["service", "f-service"], ["zip", "f-zip"],
    ["buyer", "f-buyer"], ["campaign", "f-campaign"], ["source", "f-source"],
    ["min_price", "f-min-price"], ["max_price", "f-max-price"], ["currency", "f-currency"],
  ];
  const STATUS_COLORS = {
    incoming: "#8a94a6", forwarded: "#2f6fde", completed: "#1f9d55",
    missed: "#d97706", rejected: "#b42318", fallback: "#7c3aed",
  };
  const state = { sort: "received_at", order: "desc", next: null, shown: 0, loading: 0 };

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function showError(message) {
    const box = $("error");
    if (!message) { box.hidden = true; box.textContent = ""; return; }
    box.textContent = message;
    box.hidden = false;
  }

  async function getJSON(url) {
    const res = await fetch(url, { headers: { Accept: "application/json" } });
    let body = null;
    try { body = await res.json(); } catch (_) { body = null; }
    if (res.status === 401) {
      // The operator session ended (server restarted or token changed): log in again.
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    }
    if (!res.ok) {
      const err = new Error((body && body.error) || ("HTTP " + res.status));
      err.field = body && body.field;
      throw err;
    }
    return body;
  }

  // The filter as query parameters (only non-empty values), plus the zone.
  function filterParams() {
    const p = new URLSearchParams();
    for (const [name, id] of FILTER_FIELDS) {
      const v = $(id).value.trim();
      if (v) p.set(name, v);
    }
    const statuses = Array.from(document.querySelectorAll("#f-status input:checked")).map((c) => c.value);
    if (statuses.length) p.set("status", statuses.join(","));
    p.set("tz", $("tz").value || "UTC");
    return p;
  }

  function restoreFromUrl() {
    const p = new URLSearchParams(location.search);
    for (const [name, id] of FILTER_FIELDS) $(id).value = p.get(name) || "";
    const st = (p.get("status") || "").split(",");
    document.querySelectorAll("#f-status input").forEach((c) => { c.checked = st.includes(c.value); });
    if (p.get("sort")) state.sort = p.get("sort");
    if (p.get("order")) state.order = p.get("order");
    return p.get("tz");
  }

  function markInvalid(field) {
    for (const [name, id] of FILTER_FIELDS) {
      $(id).setAttribute("aria-invalid", name === field ? "true" : "false");
    }
  }

  function updateExportLinks(p) {
    const q = new URLSearchParams(p);
    q.set("sort", state.sort);
    q.set("order", state.order);
    $("export-csv").href = BASE + "/api/export.csv?" + q.toString();
    $("export-xlsx").href = BASE + "/api/export.xlsx?" + q.toString();
  }

  function fmtDuration(s) {
    if (s === null || s === undefined) return "";
    const m = Math.floor(s / 60), r = s % 60;
    return m + ":" + String(r).padStart(2, "0");
  }

  function money(amount, currency) {
    if (amount === null || amount === undefined) return "";
    // Decimal text from the server, shown as is (two places at least), never via floats.
    let [i, f = ""] = String(amount).split(".");
    if (f.length < 2) f = f.padEnd(2, "0");
    return (currency === "USD" || !currency ? "$" : currency + " ") + i + "." + f;
  }

  function row(r) {
    const tr = document.createElement("tr");
    tr.dataset.callId = r.call_id;
    const t = el("td", r.received_local, "wrap");
    t.title = r.received_at + " (UTC)";
    tr.appendChild(t);
    const st = el("td");
    st.appendChild(el("span", r.status, "badge " + r.status));
    tr.appendChild(st);
    const id = el("td");
    const short = r.call_id.length > 18 ? r.call_id.slice(0, 6) + "…" + r.call_id.slice(-8) : r.call_id;
    const b = el("button", short, "link");
    b.title = r.call_id + " — show events";
    b.type = "button";
    b.addEventListener("click", () => showDetail(r.call_id));
    id.appendChild(b);
    tr.appendChild(id);
    tr.appendChild(el("td", r.caller || "withheld"));
    tr.appendChild(el("td", r.zip || ""));
    tr.appendChild(el("td", r.service || "", "wrap"));
    tr.appendChild(el("td", [r.campaign, r.source].filter(Boolean).join(" / "), "wrap"));
    tr.appendChild(el("td", r.buyer || "", "wrap"));
    tr.appendChild(el("td", money(r.price, r.currency), "num"));
    tr.appendChild(el("td", money(r.revenue, r.currency), "num"));
    tr.appendChild(el("td", fmtDuration(r.duration_secs), "num"));
    tr.appendChild(el("td", r.pinged ? r.bids + "/" + r.pinged : "", "num"));
    return tr;
  }

  function markSort() {
    document.querySelectorAll("button.sort").forEach((b) => {
      if (b.dataset.sort === state.sort) b.dataset.active = state.order;
      else delete b.dataset.active;
    });
  }

  async function loadCalls(append) {
    const p = filterParams();
    p.set("sort", state.sort);
    p.set("order", state.order);
    if (append && state.next) p.set("cursor", state.next);
    const ticket = ++state.loading;
    const data = await getJSON(BASE + "/api/calls?" + p.toString());
    if (ticket !== state.loading) return; // a newer request superseded this one
    const body = document.querySelector("#calls tbody");
    if (!append) { body.replaceChildren(); state.shown = 0; }
    for (const r of data.rows) body.appendChild(row(r));
    state.shown += data.rows.length;
    state.next = data.next;
    $("load-more").hidden = !data.next;
    $("empty").hidden = state.shown !== 0;
    $("row-count").textContent = state.shown + (data.next ? "+ " + plural(state.shown, "call") + " shown" : " " + plural(state.shown, "call")) + " · times in " + data.tz;
    markSort();
  }

  function barChart(svg, items, valueText) {
    const NS = "http://www.w3.org/2000/svg";
    svg.replaceChildren();
    const width = svg.clientWidth || 400;
    const rowH = 22, labelW = 120, valueW = 140;
    const shown = items.slice(0, 7);
    svg.setAttribute("viewBox", "0 0 " + width + " " + Math.max(rowH * shown.length, rowH));
    svg.style.height = Math.max(rowH * shown.length, rowH) + "px";
    if (!shown.length) {
      const t = document.createElementNS(NS, "text");
      t.setAttribute("x", 0); t.setAttribute("y", 15); t.setAttribute("class", "value");
      t.textContent = "no data";
      svg.appendChild(t);
      return;
    }
    const max = Math.max(...shown.map((i) => i.value), 0) || 1;
    shown.forEach((item, n) => {
      const y = n * rowH;
      const label = document.createElementNS(NS, "text");
      label.setAttribute("x", 0); label.setAttribute("y", y + 15);
      label.textContent = item.label.length > 16 ? item.label.slice(0, 15) + "…" : item.label;
      const full = document.createElementNS(NS, "title");
      full.textContent = item.label + ": " + valueText(item);
      label.appendChild(full);
      svg.appendChild(label);
      const bar = document.createElementNS(NS, "rect");
      const w = Math.max(((width - labelW - valueW) * item.value) / max, item.value > 0 ? 2 : 0);
      bar.setAttribute("x", labelW); bar.setAttribute("y", y + 4);
      bar.setAttribute("width", w); bar.setAttribute("height", rowH - 8);
      bar.setAttribute("rx", 3);
      bar.setAttribute("fill", item.color || "#2f6fde");
      svg.appendChild(bar);
      const v = document.createElementNS(NS, "text");
      v.setAttribute("x", labelW + w + 6); v.setAttribute("y", y + 15);
      v.setAttribute("class", "value");
      v.textContent = valueText(item);
      svg.appendChild(v);
    });
  }

  // Calls (bars) and revenue (line) per UTC day over the filter's range, gaps filled.
  function timeChart(svg, rows) {
    const NS = "http://www.w3.org/2000/svg";
    svg.replaceChildren();
    const width = svg.clientWidth || 800, height = 150, top = 8, bottom = 22;
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    const byDay = new Map(rows.filter((r) => r.group).map((r) => [r.group, r]));
    const days = [...byDay.keys()].sort();
    if (!days.length) {
      const t = document.createElementNS(NS, "text");
      t.setAttribute("x", 0); t.setAttribute("y", 15); t.setAttribute("class", "value");
      t.textContent = "no data";
      svg.appendChild(t);
      return;
    }
    const all = [];
    for (let d = new Date(days[0] + "T00:00:00Z"); d <= new Date(days[days.length - 1] + "T00:00:00Z") && all.length < 400; d.setUTCDate(d.getUTCDate() + 1)) {
      all.push(d.toISOString().slice(0, 10));
    }
    const point = all.map((day) => {
      const r = byDay.get(day);
      return { day, calls: r ? r.calls : 0, revenue: r ? Number(r.revenue) : 0, text: r ? money(r.revenue, r.currency) : "0" };
    });
    const maxCalls = Math.max(...point.map((p) => p.calls), 1);
    const maxRevenue = Math.max(...point.map((p) => p.revenue), 0) || 1;
    const slot = width / point.length, plotH = height - top - bottom;
    const line = [];
    point.forEach((p, i) => {
      const h = (plotH * p.calls) / maxCalls;
      const bar = document.createElementNS(NS, "rect");
      bar.setAttribute("class", "day");
      bar.setAttribute("data-day", p.day);
      bar.setAttribute("x", i * slot + slot * 0.15); bar.setAttribute("width", Math.max(slot * 0.7, 1));
      bar.setAttribute("y", top + plotH - h); bar.setAttribute("height", h);
      bar.setAttribute("fill", "#2f6fde");
      const tip = document.createElementNS(NS, "title");
      tip.textContent = p.day + ": " + p.calls + " " + plural(p.calls, "call") + ", revenue " + p.text;
      bar.appendChild(tip);
      svg.appendChild(bar);
      line.push((i * slot + slot / 2).toFixed(1) + "," + (top + plotH - (plotH * p.revenue) / maxRevenue).toFixed(1));
      if (i === 0 || i === point.length - 1 || (point.length <= 14) || i % Math.ceil(point.length / 7) === 0) {
        const l = document.createElementNS(NS, "text");
        l.setAttribute("x", i * slot + slot / 2); l.setAttribute("y", height - 6);
        l.setAttribute("text-anchor", "middle"); l.setAttribute("class", "value");
        l.textContent = p.day.slice(5);
        svg.appendChild(l);
      }
    });
    const pl = document.createElementNS(NS, "polyline");
    pl.setAttribute("class", "revenue");
    pl.setAttribute("points", line.join(" "));
    pl.setAttribute("fill", "none"); pl.setAttribute("stroke", "#1b8a5a"); pl.setAttribute("stroke-width", "2");
    svg.appendChild(pl);
  }

  async function loadSummary() {
    const data = await getJSON(BASE + "/api/summary?" + filterParams().toString());
    const t = data.total || { calls: 0, accepted: 0, accept_rate: "0", revenue: "0", margin: "0", currency: null };
    $("k-calls").textContent = t.calls;
    $("k-accepted").textContent = t.accepted;
    $("k-rate").textContent = (Number(t.accept_rate) * 100).toFixed(1) + "%";
    $("k-revenue").textContent = money(t.revenue, t.currency);
    $("k-margin").textContent = money(t.margin, t.currency);
    barChart($("chart-status"), data.by_status.map((g) => ({
      label: g.group || "unknown", value: g.calls, color: STATUS_COLORS[g.group],
    })), (i) => String(i.value));
    const byBuyer = data.by_buyer.filter((g) => g.group)
      .map((g) => ({ label: g.group, value: Number(g.revenue), text: money(g.revenue, g.currency), calls: g.calls }))
      .sort((a, b) => b.value - a.value);
    // Bar lengths use Number() (display only); the labels are the exact decimal text.
    barChart($("chart-buyer"), byBuyer, (i) => i.text + " · " + i.calls + " " + plural(i.calls, "call"));
    timeChart($("chart-days"), data.by_day || []);
  }

  async function refresh() {
    const p = filterParams();
    const url = new URLSearchParams(p);
    url.set("sort", state.sort); url.set("order", state.order);
    history.replaceState(null, "", location.pathname + "?" + url.toString());
    updateExportLinks(p);
    state.next = null;
    try {
      await Promise.all([loadCalls(false), loadSummary()]);
      showError(null);
      markInvalid(null);
    } catch (e) {
      showError(e.message);
      markInvalid(e.field);
    }
  }

  async function showDetail(callId) {
    try {
      const data = await getJSON(BASE + "/api/calls/" + encodeURIComponent(callId) + "?tz=" + encodeURIComponent($("tz").value));
      $("detail-id").textContent = data.call.call_id;
      const list = $("detail-events");
      list.replaceChildren();
      $("why-call").textContent = data.call.call_id;
      showWhy(data.why);
      for (const ev of data.events) {
        const li = el("li");
        li.appendChild(el("span", ev.at_local, "t"));
        li.appendChild(el("strong", ev.type));
        if (ev.type === "auction_explained") {
          // The auction's full inputs: shown as the "why this buyer won" table above.
          li.appendChild(el("div", "the auction's inputs: see \u201cWhy this buyer won\u201d", "muted"));
          list.appendChild(li);
          continue;
        }
        const d = Object.assign({}, ev.detail); delete d.type;
        const parts = Object.entries(d).filter(([, v]) => v !== null)
          .map(([k, v]) => k + "=" + (typeof v === "object" ? JSON.stringify(v) : v));
        if (parts.length) li.appendChild(el("div", parts.join(", "), "muted"));
        list.appendChild(li);
      }
      showQuality(data.quality);
      $("detail").hidden = false;
      showPostbacks(callId);
    } catch (e) { showError(e.message); }
  }

  // Publisher postbacks of the call in the detail view (issue 12, item 5): one row per
  // delivery; the section stays hidden when the call has none.
  async function showPostbacks(callId) {
    const section = $("detail-postbacks");
    const body = $("detail-postbacks-rows");
    body.replaceChildren();
    section.hidden = true;
    try {
      const data = await getJSON(BASE + "/api/calls/" + encodeURIComponent(callId) + "/postbacks");
      for (const p of data.postbacks) {
        const tr = el("tr");
        const last = [p.last_status ? "HTTP " + p.last_status : "", p.last_error || ""].filter(Boolean).join(" · ");
        for (const v of [p.publisher, p.state, p.url || "", String(p.attempts), last, p.next_attempt_at || "", p.delivered_at || ""]) {
          tr.appendChild(el("td", v));
        }
        tr.dataset.state = p.state;
        body.appendChild(tr);
      }
      section.hidden = data.postbacks.length === 0;
    } catch (e) { showError(e.message); }
  }

  // "Why this buyer won": one row per buyer of the verified replay of the logged auction.
  function showWhy(why) {
    const box = $("detail-why");
    box.hidden = !why;
    if (!why) return;
    const verdict = $("why-verdict");
    if (why.error) {
      verdict.textContent = "cannot replay: " + why.error;
    } else if (why.agrees) {
      verdict.textContent = "Strategy " + why.strategy.name + ". Replayed from the logged inputs: same winner, same scores.";
    } else {
      verdict.textContent = "Replay disagrees with the log: " + why.mismatches.join("; ");
    }
    const body = $("why-table").querySelector("tbody");
    body.replaceChildren();
    for (const r of why.rows || []) {
      const tr = el("tr");
      if (r.winner) tr.className = "winner";
      tr.dataset.buyer = r.buyer;
      const outcome = r.detail ? r.outcome + ": " + r.detail : r.outcome;
      for (const v of [r.rank, r.buyer, outcome, r.bid, r.geo, r.time, r.duration, r.evidence, r.score]) {
        tr.appendChild(el("td", v === null || v === undefined ? "" : String(v)));
      }
      body.appendChild(tr);
    }
  }

  // Call detail: transcript and conversion evidence (issue 12's quality factor).
  function showQuality(q) {
    const box = $("detail-quality");
    box.replaceChildren();
    box.hidden = !q;
    if (!q) return;
    box.appendChild(el("h3", "Quality"));
    const cls = q.transcript_class || "unclassified";
    box.appendChild(el("div", "Transcript: " + cls, "quality-class " + cls));
    for (const p of q.postbacks) {
      const v = p.value ? " (" + p.value + " " + p.currency + ")" : "";
      box.appendChild(el("div", "Postback from " + p.buyer + ": " + (p.converted ? "converted" : "not converted") + v, "postback"));
    }
    const ol = el("ol", null, "transcript");
    for (const f of q.transcript) {
      const li = el("li");
      li.appendChild(el("span", f.track === "inbound_track" ? "caller" : "buyer", "t"));
      li.appendChild(el("span", f.text));
      if (f.class) li.appendChild(el("strong", " " + f.class + " (" + f.phrase + ")"));
      ol.appendChild(li);
    }
    box.appendChild(ol);
  }

  // A destination as serialized by core: {"kind": "phone"|"sip", "value": "…"}.
  function destText(d) {
    if (d && typeof d === "object") return String(d.value !== undefined ? d.value : JSON.stringify(d));
    return d === undefined || d === null ? "" : String(d);
  }

  // Live feed of auction events.
  function feedLine(ev) {
    const k = ev.kind || {};
    const cur = (p) => (p ? money(p.amount, p.currency) : "");
    switch (k.event) {
      case "started": return ["started", "pinging " + k.eligible.length + " buyer(s)" + (k.excluded.length ? ", " + k.excluded.length + " excluded" : "")];
      case "bid_received": return [k.invalid ? "failed" : "bid", k.buyer + " bid " + cur(k.price) + " in " + k.latency_ms + " ms" + (k.invalid ? " (refused: " + k.invalid + ")" : "")];
      case "no_bid": return ["nobid", k.buyer + " declined: " + k.reason];
      case "buyer_failed": return ["failed", k.buyer + " failed (" + k.kind + "): " + k.message];
      case "accept_failed": return ["failed", k.buyer + " accept failed: " + k.reason];
      case "won": return ["won", "won by " + k.buyer + " at " + cur(k.price) + " → " + destText(k.destination)];
      case "no_buyer": return ["nobuyer", "no buyer: " + k.reason];
      default: return ["", JSON.stringify(k)];
    }
  }

  /** The one pending feed-triggered refresh (debounced). */
  let feedRefreshTimer = null;

  function connectFeed() {
    if (!window.EventSource) return;
    const src = new EventSource(BASE + "/api/auctions/stream");
    const live = $("live");
    src.onopen = () => { live.textContent = "feed: live"; live.className = "live on"; };
    src.onerror = () => { live.textContent = "feed: reconnecting"; live.className = "live off"; };
    const feed = $("feed");
    src.addEventListener("auction", (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch (_) { return; }
      const [cls, text] = feedLine(ev);
      const li = el("li", null, cls);
      const when = ev.at ? new Date(ev.at) : new Date();
      li.appendChild(el("span", when.toLocaleTimeString("en-GB", { timeZone: $("tz").value, timeZoneName: "short" }), "t"));
      li.appendChild(el("code", ev.call_id));
      li.appendChild(document.createTextNode(" "));
      li.appendChild(el("span", text));
      feed.prepend(li);
      while (feed.children.length > 200) feed.lastChild.remove();
      if (ev.kind && (ev.kind.event === "won" || ev.kind.event === "no_buyer")) {
        // A finished auction usually means new call-log rows soon; a burst of them
        // collapses into one refresh (one pending timer, re-armed on each event).
        clearTimeout(feedRefreshTimer);
        feedRefreshTimer = setTimeout(() => { feedRefreshTimer = null; refresh(); }, 800);
      }
    });
    src.addEventListener("lagged", (m) => {
      let n = "?";
      try { n = JSON.parse(m.data).missed; } catch (_) { /* keep "?" */ }
      feed.prepend(el("li", "… " + n + " event(s) skipped (feed fell behind)", "muted"));
    });
  }

  // The agent pool's metrics (issue 10), when the server has a pool (the desk's API
  // answers 404 without one, and the panel stays hidden).
  async function loadAgentMetrics() {
    let res;
    try { res = await fetch(BASE + "/desk/api/metrics?hours=24", { headers: { Accept: "application/json" } }); } catch (_) { return; }
    if (!res.ok) { $("agents-panel").hidden = true; return; }
    const m = await res.json();
    $("agents-totals").textContent = m.offers + " " + plural(m.offers, "offer") + " · " + m.accepted + " accepted · " +
      m.fallbacks + " to the fallback · " + m.caller_hung_up + " " + plural(m.caller_hung_up, "caller") +
      " hung up while offered · " + m.live + " ringing";
    const tbody = $("agents-metrics").querySelector("tbody");
    tbody.replaceChildren();
    for (const a of m.agents) {
      const tr = el("tr");
      tr.dataset.agent = a.agent;
      const util = a.utilisation == null ? "—" : (Number(a.utilisation) * 100).toFixed(1) + "%";
      const ms = a.accept_ms_median == null ? "—" : (a.accept_ms_median / 1000).toFixed(1) + " s";
      for (const v of [a.name, a.presence.state, a.offered, a.accepted, a.missed, ms, util]) tr.appendChild(el("td", v));
      tbody.appendChild(tr);
    }
    $("agents-panel").hidden = false;
  }

  // Number-pool health (issue 9), when the server has pools (404 otherwise: hidden).
  async function loadPoolHealth() {
    let res;
    try { res = await fetch(BASE + "/pool/api/health?hours=24", { headers: { Accept: "application/json" } }); } catch (_) { return; }
    if (!res.ok) { $("pools-panel").hidden = true; return; }
    const body = await res.json();
    const tbody = $("pools-health").querySelector("tbody");
    tbody.replaceChildren();
    for (const p of body.pools) {
      const h = p.health;
      const calls = Object.keys(h.calls).map((k) => k + " " + h.calls[k]).join(", ") || "0";
      const tr = el("tr");
      tr.dataset.pool = p.pool;
      for (const v of [p.pool, h.numbers, h.leased, h.locked, h.peak_leased,
        (p.lease_overflow_permille / 10).toFixed(1) + "%", calls, h.idle]) tr.appendChild(el("td", v));
      tbody.appendChild(tr);
    }
    $("pools-panel").hidden = body.pools.length === 0;
    if (!body.pools.length) return;
    let rep;
    try { rep = await getJSON(BASE + "/pool/api/report?hours=24"); } catch (_) { return; }
    const lb = $("pools-listings").querySelector("tbody");
    lb.replaceChildren();
    for (const r of rep.report.listings) {
      const tr = el("tr");
      tr.dataset.listing = r.key;
      for (const v of [r.key, r.views, r.not_called, r.calls, fmtDuration(r.duration_secs), "$" + r.revenue]) tr.appendChild(el("td", v));
      lb.appendChild(tr);
    }
  }

  async function init() {
    const urlTz = restoreFromUrl();
    let meta;
    try { meta = await getJSON(BASE + "/api/meta"); } catch (e) { showError(e.message); return; }
    const tz = $("tz");
    const zones = meta.time_zones.slice();
    if (urlTz && !zones.includes(urlTz)) zones.push(urlTz);
    for (const z of zones) { const o = el("option", z); o.value = z; tz.appendChild(o); }
    tz.value = urlTz || "UTC";
    const fs = $("f-status");
    for (const s of meta.statuses) {
      const lab = el("label");
      const cb = document.createElement("input");
      cb.type = "checkbox"; cb.value = s; cb.name = "status"; cb.id = "status-" + s;
      lab.appendChild(cb); lab.appendChild(el("span", s, "badge " + s));
      fs.appendChild(lab);
    }
    restoreFromUrl();
    for (const [list, values] of [["dl-services", meta.services], ["dl-buyers", meta.buyers], ["dl-campaigns", meta.campaigns], ["dl-sources", meta.sources]]) {
      const dl = $(list);
      for (const v of values) { const o = document.createElement("option"); o.value = v; dl.appendChild(o); }
    }
    $("filters").addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
    $("reset").addEventListener("click", () => {
      for (const [, id] of FILTER_FIELDS) $(id).value = "";
      document.querySelectorAll("#f-status input").forEach((c) => { c.checked = false; });
      refresh();
    });
    tz.addEventListener("change", refresh);
    $("load-more").addEventListener("click", () => loadCalls(true).catch((e) => showError(e.message)));
    $("detail-close").addEventListener("click", () => { $("detail").hidden = true; $("detail-why").hidden = true; });
    document.querySelectorAll("button.sort").forEach((b) => b.addEventListener("click", () => {
      if (state.sort === b.dataset.sort) state.order = state.order === "desc" ? "asc" : "desc";
      else { state.sort = b.dataset.sort; state.order = "desc"; }
      refresh();
    }));
    connectFeed();
    await refresh();
    await loadAgentMetrics();
    await loadPoolHealth();
    setInterval(() => { loadAgentMetrics(); loadPoolHealth(); }, 10000);
    document.body.dataset.ready = "true";
  }

  init();
})();

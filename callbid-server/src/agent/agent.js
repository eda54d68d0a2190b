// callbid agent page: start an auction for the live call, watch bids arrive, forward.
// Server data goes on the page with textContent only.
"use strict";
// The prefix the server is mounted under (Router::nest), from the page's meta tag.
const BASE = (document.querySelector('meta[name="callbid-base"]') || {}).content || "";
(function () {
  const $ = (id) => document.getElementById(id);
  const current = { id: null, callSid: null, timer: null };

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function showError(msg) {
    const b = $("error");
    b.hidden = !msg;
    b.textContent = msg || "";
  }
  function money(amount, currency) {
    if (amount === null || amount === undefined) return "";
    let [i, f = ""] = String(amount).split(".");
    if (f.length < 2) f = f.padEnd(2, "0");
    return (currency === "USD" || !currency ? "$" : currency + " ") + i + "." + f;
  }
  async function call(method, url, body) {
    const res = await fetch(url, {
      method,
      headers: body ? { "Content-Type": "application/x-www-form-urlencoded" } : {},
      body: body ? body.toString() : undefined,
    });
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (res.status === 401) {
      // The operator session ended (server restarted or token changed): log in again.
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    }
    if (!res.ok) {
      const e = new Error((data && data.error) || "HTTP " + res.status);
      e.field = data && data.field;
      e.data = data;
      throw e;
    }
    return data;
  }

  function bidRow(buyer, answer, price, latency, note, cls) {
    const body = document.querySelector("#bids tbody");
    let tr = Array.from(body.children).find((r) => r.dataset.buyer === buyer);
    if (!tr) { tr = document.createElement("tr"); tr.dataset.buyer = buyer; body.appendChild(tr); }
    tr.replaceChildren(el("td", buyer), el("td", answer, cls), el("td", price, "num"),
      el("td", latency === null || latency === undefined ? "" : latency + " ms", "num"), el("td", note || "", "muted"));
  }

  function render(s) {
    $("auction-id").textContent = s.id;
    $("state").textContent = s.status.replace("_", " ") + " · " + s.mode;
    for (const b of s.bids) {
      bidRow(b.buyer, b.reply.replace("_", " "), money(b.price, b.currency), b.latency_ms, b.reason,
        b.reply === "bid" ? "" : "muted");
    }
    const result = $("result");
    result.replaceChildren();
    result.hidden = true;
    if (s.winner) {
      result.className = "winner";
      result.appendChild(el("strong", "Winner: " + s.winner.buyer + " at " + money(s.winner.price, s.winner.currency)));
      result.appendChild(el("div", "Destination: " + s.winner.destination + " · score " + s.winner.score));
      result.hidden = false;
    } else if (s.status === "no_buyer") {
      result.className = "winner none";
      result.appendChild(el("strong", "No buyer: " + (s.no_buyer_reason || "")));
      result.appendChild(el("div", "Keep the caller; the call is logged as an in-house fallback."));
      result.hidden = false;
    }
    if (s.error) result.appendChild(el("div", s.error, "muted"));
    if (s.status === "ended") result.appendChild(el("div", "The call ended before it was forwarded; the buyer's slot was given back.", "muted"));
    if (s.status === "superseded") result.appendChild(el("div", "A newer auction for this call replaced this one.", "muted"));
    for (const e of s.log_errors || []) result.appendChild(el("div", "Call log not written: " + e, "muted"));
    const fwd = $("forward");
    fwd.hidden = !(s.status === "won" || s.status === "forward_failed");
    fwd.disabled = false;
    const tw = $("twiml");
    tw.hidden = !s.twiml;
    tw.textContent = s.twiml ? "Sent to Twilio: " + s.twiml : "";
    if (s.status === "forwarded") $("state").textContent = "forwarded to " + (s.winner ? s.winner.buyer : "buyer") + " · " + s.mode;
  }

  async function poll() {
    if (!current.id) return;
    try {
      const s = await call("GET", BASE + "/agent/api/auctions/" + encodeURIComponent(current.id));
      render(s);
      if (s.status === "running" || s.status === "forwarding" || (s.mode === "auto" && s.status === "won")) {
        current.timer = setTimeout(poll, 400);
      }
    } catch (e) { showError(e.message); }
  }

  async function start(ev) {
    ev.preventDefault();
    showError(null);
    const p = new URLSearchParams();
    for (const id of ["call_sid", "zip", "service", "campaign", "source"]) p.set(id, $(id).value.trim());
    const mode = document.querySelector("input[name=mode]:checked");
    if (mode) p.set("mode", mode.value);
    document.querySelector("#bids tbody").replaceChildren();
    $("result").hidden = true; $("forward").hidden = true; $("twiml").hidden = true;
    try {
      const s = await call("POST", BASE + "/agent/api/auctions", p);
      current.id = s.id; current.callSid = s.call_sid;
      clearTimeout(current.timer);
      render(s);
      poll();
    } catch (e) {
      showError(e.message);
      if (e.field && $(e.field)) $(e.field).focus();
    }
  }

  async function forward() {
    if (!current.id) return;
    $("forward").disabled = true;
    try {
      render(await call("POST", BASE + "/agent/api/auctions/" + encodeURIComponent(current.id) + "/forward"));
      showError(null);
    } catch (e) {
      showError(e.message);
      if (e.data && e.data.auction) render(e.data.auction);
    }
  }

  async function liveCalls() {
    try {
      const calls = await call("GET", BASE + "/agent/api/live-calls");
      const list = $("live-calls");
      list.replaceChildren();
      for (const c of calls) {
        const li = el("li");
        const info = el("span");
        info.appendChild(el("code", c.call_sid));
        info.appendChild(el("div", (c.from || "unknown caller") + " → " + (c.to || "") + " · " + new Date(c.at).toLocaleTimeString("en-GB", { timeZone: "UTC", timeZoneName: "short" }), "muted"));
        const use = el("button", "Use", "secondary small");
        use.type = "button";
        use.addEventListener("click", () => { $("call_sid").value = c.call_sid; $("zip").focus(); });
        li.appendChild(info); li.appendChild(use);
        list.appendChild(li);
      }
      if (!calls.length) list.appendChild(el("li", "No calls yet.", "muted"));
      if (!$("call_sid").value && calls.length) $("call_sid").value = calls[0].call_sid;
    } catch (e) { showError(e.message); }
  }

  function feed() {
    if (!window.EventSource) return;
    const src = new EventSource(BASE + "/api/auctions/stream");
    src.onopen = () => { $("live").textContent = "feed: live"; $("live").className = "live on"; };
    src.onerror = () => { $("live").textContent = "feed: reconnecting"; $("live").className = "live off"; };
    src.addEventListener("auction", (m) => {
      let ev; try { ev = JSON.parse(m.data); } catch (_) { return; }
      if (!current.callSid || ev.call_id !== current.callSid) return;
      const k = ev.kind || {};
      switch (k.event) {
        case "started":
          for (const b of k.eligible) bidRow(b, "pinging…", "", null, "", "muted");
          for (const [b, why] of k.excluded) bidRow(b, "not pinged", "", null, why, "muted");
          break;
        case "bid_received": bidRow(k.buyer, k.invalid ? "invalid bid" : "bid", money(k.price.amount, k.price.currency), k.latency_ms, k.invalid || ""); break;
        case "no_bid": bidRow(k.buyer, "no bid", "", k.latency_ms, k.reason, "muted"); break;
        case "buyer_failed": bidRow(k.buyer, "failed", "", null, k.kind + ": " + k.message, "muted"); break;
        case "won": case "no_buyer": poll(); break;
        default: break;
      }
    });
  }

  async function init() {
    try {
      const cfg = await call("GET", BASE + "/agent/api/config");
      $(cfg.default_mode === "auto" ? "mode-auto" : "mode-manual").checked = true;
    } catch (e) { showError(e.message); }
    $("auction-form").addEventListener("submit", start);
    $("forward").addEventListener("click", forward);
    feed();
    await liveCalls();
    setInterval(liveCalls, 3000);
    document.body.dataset.ready = "true";
  }
  init();
})();

// The agent-pool desk: live offers over SSE, Accept / Decline, presence, pool metrics.
// Every value from the server is shown with textContent (never parsed as HTML).
(function () {
  "use strict";
  const base = document.querySelector('meta[name="callbid-base"]').content;
  const $ = (id) => document.getElementById(id);
  let source = null;
  let agent = new URLSearchParams(location.search).get("agent") || "";

  function showError(msg) {
    const e = $("error");
    e.textContent = msg || "";
    e.hidden = !msg;
  }

  function status(text, cls) {
    const s = $("status");
    s.textContent = text;
    s.className = cls || "";
  }

  async function call(method, path, body) {
    const opts = { method, headers: {} };
    if (body !== undefined) {
      opts.headers["content-type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(base + path, opts);
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    return { status: res.status, data };
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  async function loadAgents() {
    const r = await call("GET", "/desk/api/agents");
    if (r.status !== 200) { showError((r.data && r.data.error) || "cannot list agents"); return; }
    const sel = $("agent");
    sel.replaceChildren();
    for (const a of r.data.agents) {
      const o = el("option", a.name + " (" + a.id + ", tier " + a.tier + ")");
      o.value = a.id;
      sel.appendChild(o);
    }
    if (agent) sel.value = agent; else agent = sel.value;
  }

  function renderOffers(view) {
    $("presence").textContent = view.presence || "—";
    const ul = $("offers");
    ul.replaceChildren();
    $("no-offers").hidden = view.offers.length > 0;
    for (const o of view.offers) {
      const li = el("li", undefined, o.mine ? "mine" : "");
      li.dataset.offerId = o.id;
      li.appendChild(el("span", o.service + " call from " + o.zip + " · tier " + o.tier + " · ringing " + o.ringing.join(", ")));
      if (o.mine) {
        const box = el("span");
        const acc = el("button", "Accept", "accept");
        acc.type = "button";
        acc.addEventListener("click", () => accept(o.id, acc));
        const dec = el("button", "Decline", "decline secondary");
        dec.type = "button";
        dec.addEventListener("click", () => decline(o.id));
        box.append(acc, " ", dec);
        li.appendChild(box);
      }
      ul.appendChild(li);
    }
  }

  function decided(d) {
    let text;
    if (d.outcome === "accepted") text = d.you ? "You took call " + d.offer : "Call " + d.offer + " was taken by " + d.by;
    else if (d.outcome === "caller_gone") text = "Call " + d.offer + ": the caller hung up";
    else if (d.outcome === "next_tier") text = "Call " + d.offer + " moved on to the next tier";
    else text = "Call " + d.offer + " went to the fallback";
    const li = el("li", text);
    li.dataset.offerId = d.offer;
    li.dataset.outcome = d.outcome;
    $("history").prepend(li);
    if (d.outcome === "accepted" && !d.you) status("Taken by " + d.by, "lost");
  }

  let retryMove = null;  // an offer this agent won whose call move failed

  async function accept(id, button) {
    button.disabled = true;
    const body = { agent };
    if (retryMove === id) body.retry = true;
    const r = await call("POST", "/desk/api/offers/" + encodeURIComponent(id) + "/accept", body);
    const d = r.data || {};
    if (r.status === 200) status("You won call " + id + ": connecting", "won");
    else if (d.result === "taken") status("Taken by " + d.by, "lost");
    else {
      status(d.error || ("accept failed: " + r.status), "lost");
      button.disabled = false;
      if (d.retry) retryMove = id;
    }
  }

  async function decline(id) {
    const r = await call("POST", "/desk/api/offers/" + encodeURIComponent(id) + "/decline", { agent });
    if (r.status !== 200) showError((r.data && r.data.error) || "decline failed");
  }

  async function setPresence(change) {
    const r = await call("POST", "/desk/api/agents/" + encodeURIComponent(agent) + "/presence", { change });
    if (r.status === 200) { $("presence").textContent = r.data.presence; showError(""); }
    else showError((r.data && r.data.error) || ("presence: " + r.status));
  }

  function connect() {
    if (source) source.close();
    const live = $("live");
    source = new EventSource(base + "/desk/api/offers/stream?agent=" + encodeURIComponent(agent));
    source.addEventListener("offers", (ev) => {
      renderOffers(JSON.parse(ev.data));
      live.textContent = "feed: live";
      live.className = "live on";
      document.body.dataset.ready = "true";
    });
    source.addEventListener("decided", (ev) => decided(JSON.parse(ev.data)));
    source.addEventListener("problem", (ev) => showError(JSON.parse(ev.data).error));
    source.onerror = () => { live.textContent = "feed: reconnecting"; live.className = "live off"; };
  }

  async function loadMetrics() {
    const r = await call("GET", "/desk/api/metrics?hours=24");
    if (r.status !== 200) return;
    const m = r.data;
    $("pool-totals").textContent = m.offers + " offers · " + m.accepted + " accepted · " + m.fallbacks +
      " to the fallback · " + m.caller_hung_up + " callers hung up while offered · " + m.live + " ringing";
    const tbody = $("metrics").querySelector("tbody");
    tbody.replaceChildren();
    for (const a of m.agents) {
      const tr = el("tr");
      tr.dataset.agent = a.agent;
      const util = a.utilisation == null ? "—" : (Number(a.utilisation) * 100).toFixed(1) + "%";
      for (const v of [a.name, a.presence.state, a.offered, a.accepted, a.missed, a.taken,
        a.accept_ms_median == null ? "—" : a.accept_ms_median, util]) tr.appendChild(el("td", String(v)));
      tbody.appendChild(tr);
    }
  }

  async function start() {
    await loadAgents();
    $("agent").addEventListener("change", (e) => {
      agent = e.target.value;
      history.replaceState(null, "", "?agent=" + encodeURIComponent(agent));
      status("");
      connect();
    });
    $("login").addEventListener("click", () => setPresence("log_in"));
    $("logout").addEventListener("click", () => setPresence("log_out"));
    $("end-call").addEventListener("click", () => setPresence("end_call"));
    connect();
    loadMetrics();
    setInterval(loadMetrics, 5000);
  }

  start().catch((e) => showError(String(e)));
})();

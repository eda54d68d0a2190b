/*
 * callbid-dni.js: dynamic number insertion for callbid's number pools (seed 003).
 * No build step. Include it on a page:
 *
 *   <script src="https://calls.example.com/pool/callbid-dni.js" data-pool="cars"></script>
 *   <a href="tel:+15125550100" data-callbid-listing="listing-42">(512) 555-0100</a>
 *
 * For every element marked data-callbid-listing it leases a tracking number for this
 * visitor and listing (POST {api}/pool/{pool}/lease), swaps the element's tel: link and
 * its text, renews the lease while the page is open (POST …/renew every heartbeat_ms),
 * and handles elements added later (a MutationObserver). A lease lasts the visitor's
 * session (the pool's lease length), not the page: after a reload the same visitor and
 * listing are answered with the same lease and number. On any error the element keeps
 * its original number.
 *
 * Script attributes: data-pool (required); data-api (default: where the script came
 * from); data-publisher and data-source (sent with every lease). An element may set
 * data-callbid-publisher / data-callbid-source of its own. The visitor id lives in the
 * first-party cookie `callbid_vid` (one year).
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.callbidDni) return;
  var pool = script.getAttribute("data-pool");
  if (!pool) return;
  var api = script.getAttribute("data-api") ||
    script.src.replace(/\/pool\/callbid-dni\.js(\?.*)?$/, "");
  var leases = {};   // listing -> {number, display, lease, heartbeat_ms, elements}
  var pending = {};  // listing -> Promise of a lease (or null)
  var timer = null;

  function visitorId() {
    var m = document.cookie.match(/(?:^|;\s*)callbid_vid=([A-Za-z0-9_-]{8,64})/);
    if (m) return m[1];
    var bytes = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    var id = "v" + Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
    document.cookie = "callbid_vid=" + id + "; path=/; max-age=31536000; SameSite=Lax" +
      (location.protocol === "https:" ? "; Secure" : "");
    return id;
  }

  function utm() {
    var p = new URLSearchParams(location.search);
    var out = {};
    ["source", "medium", "campaign", "term", "content"].forEach(function (k) {
      var v = p.get("utm_" + k);
      if (v) out[k] = v;
    });
    return out;
  }

  function post(path, body) {
    return fetch(api + "/pool/" + encodeURIComponent(pool) + "/" + path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
    }).then(function (res) {
      return res.json().then(function (data) {
        if (!res.ok) throw new Error((data && data.error) || ("HTTP " + res.status));
        return data;
      });
    });
  }

  function lease(listing, el) {
    if (leases[listing]) return Promise.resolve(leases[listing]);
    if (pending[listing]) return pending[listing];
    var body = {
      visitor: visitorId(),
      listing: listing,
      page: location.href,
      referrer: document.referrer || undefined,
      utm: utm(),
    };
    var publisher = el.getAttribute("data-callbid-publisher") || script.getAttribute("data-publisher");
    var source = el.getAttribute("data-callbid-source") || script.getAttribute("data-source");
    if (publisher) body.publisher = publisher;
    if (source) body.source = source;
    pending[listing] = post("lease", body).then(function (d) {
      if (d.outcome !== "leased" && d.outcome !== "overflow") return null;
      var l = { number: d.number, display: d.display, lease: d.lease || null,
        heartbeat_ms: d.heartbeat_ms || 0 };
      leases[listing] = l;
      schedule(l.heartbeat_ms);
      return l;
    }).catch(function () { return null; }).then(function (l) {
      delete pending[listing];
      return l;
    });
    return pending[listing];
  }

  function swap(el, l) {
    var links = el.matches("a[href^='tel:']") ? [el] : el.querySelectorAll("a[href^='tel:']");
    Array.prototype.forEach.call(links, function (a) { a.setAttribute("href", "tel:" + l.number); });
    var texts = el.querySelectorAll("[data-callbid-number]");
    if (texts.length) {
      Array.prototype.forEach.call(texts, function (t) { t.textContent = l.display; });
    } else if (el.children.length === 0) {
      el.textContent = l.display;
    }
    el.setAttribute("data-callbid-state", "swapped");
    el.setAttribute("data-callbid-number-shown", l.number);
  }

  function handle(el) {
    if (el.hasAttribute("data-callbid-state")) return;
    var listing = el.getAttribute("data-callbid-listing");
    if (!listing) return;
    el.setAttribute("data-callbid-state", "pending");
    lease(listing, el).then(function (l) {
      if (l) swap(el, l); else el.setAttribute("data-callbid-state", "original");
    });
  }

  function scan(root) {
    if (root.nodeType !== 1) return;
    if (root.hasAttribute("data-callbid-listing")) handle(root);
    Array.prototype.forEach.call(root.querySelectorAll("[data-callbid-listing]"), handle);
  }

  // Renew every live lease each heartbeat; a lease the server ended is leased again.
  function schedule(ms) {
    if (!ms || timer) return;
    timer = setInterval(renewAll, Math.max(ms, 1000));
  }

  function renewAll() {
    Object.keys(leases).forEach(function (listing) {
      var l = leases[listing];
      if (!l.lease) return;
      post("renew", { lease: l.lease }).then(function (d) {
        l.renewed = (l.renewed || 0) + 1;
        l.expires_at = d.expires_at;
        document.documentElement.setAttribute("data-callbid-renewals", String(totalRenewals()));
      }).catch(function () { /* keep showing it; the next heartbeat tries again */ });
    });
  }

  function totalRenewals() {
    return Object.keys(leases).reduce(function (n, k) { return n + (leases[k].renewed || 0); }, 0);
  }

  function start() {
    scan(document.body);
    new MutationObserver(function (changes) {
      changes.forEach(function (c) { Array.prototype.forEach.call(c.addedNodes, scan); });
    }).observe(document.body, { childList: true, subtree: true });
  }

  window.callbidDni = { leases: leases, rescan: function () { scan(document.body); } };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

// twofactor demo: push approval in the browser.
//
// The sign-in page's "approve on your device": send the push, show the number,
// long-poll until the device answers.
//
// The device page (/device): this browser acts as a phone. Its key is an ECDSA
// P-256 key made by WebCrypto with extractable = false and kept in IndexedDB (the
// browser stores the CryptoKey object; its private half can sign but never be read
// out). Every request is signed here over the canonical encoding of
// providers/push/pushsig: "TFPUSH1", then each field as a 4-byte big-endian length
// and its bytes; the fields are purpose, device id, timestamp (Unix ms, decimal),
// a fresh 16-byte nonce, then the request's own fields. WebCrypto signs ECDSA as
// IEEE P1363 (r||s), which authd accepts. The demo backend only relays.
//
// Delivery: given the enrollment link (with the server's VAPID key), the page
// registers /device-sw.js and subscribes to Web Push with that key as
// applicationServerKey, then enrolls with the subscription (endpoint, p256dh,
// auth); the worker wakes the page at each push. Without a key, a Push API or a
// push service (headless browsers), it enrolls poll only and polls every second.
"use strict";

(function () {
  const enc = new TextEncoder();

  function b64(buf) {
    const bytes = new Uint8Array(buf);
    let bin = "";
    for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin);
  }

  function bytesOf(f) { return typeof f === "string" ? enc.encode(f) : new Uint8Array(f); }

  // encode is pushsig.Encode.
  function encode(fields) {
    const parts = fields.map(bytesOf);
    const magic = enc.encode("TFPUSH1");
    let n = magic.length;
    parts.forEach(function (p) { n += 4 + p.length; });
    const out = new Uint8Array(n);
    const view = new DataView(out.buffer);
    out.set(magic, 0);
    let off = magic.length;
    parts.forEach(function (p) {
      view.setUint32(off, p.length, false);
      out.set(p, off + 4);
      off += 4 + p.length;
    });
    return out;
  }

  async function post(path, body) {
    const resp = await fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}),
    });
    let j = {};
    try { j = await resp.json(); } catch (e) { /* not JSON */ }
    if (!resp.ok) throw new Error(j.message || ("HTTP " + resp.status));
    return j;
  }

  function show(el, text, kind) {
    if (!el) return;
    el.hidden = false;
    el.textContent = text;
    el.className = "result" + (kind ? " " + kind : "");
  }

  // ---- sign-in page ----

  async function pushSignin(btn) {
    const status = document.getElementById("push-status");
    const number = document.getElementById("push-number");
    btn.disabled = true;
    try {
      const begun = await post("/signin/push/begin");
      if (begun.number) {
        document.getElementById("push-number-value").textContent = begun.number;
        number.hidden = false;
      }
      show(status, "Push sent to " + (begun.devices || 0) + " device(s). Waiting for your answer…");
      for (;;) {
        const v = await post("/signin/push/wait");
        if (v.result === "pending") continue;
        if (v.redirect) { window.location.assign(v.redirect); return; }
        show(status, v.message, v.result);
        number.hidden = true;
        break;
      }
    } catch (e) {
      show(status, e.message, "rejected");
    }
    btn.disabled = false;
  }

  // ---- device page ----

  const DB = "twofactor-device", STORE = "device", SELF = "self";

  function idb(mode, fn) {
    return new Promise(function (resolve, reject) {
      const open = indexedDB.open(DB, 1);
      open.onupgradeneeded = function () { open.result.createObjectStore(STORE); };
      open.onerror = function () { reject(open.error); };
      open.onsuccess = function () {
        const tx = open.result.transaction(STORE, mode);
        const req = fn(tx.objectStore(STORE));
        tx.oncomplete = function () { open.result.close(); resolve(req && req.result); };
        tx.onerror = function () { open.result.close(); reject(tx.error); };
      };
    });
  }
  const load = function () { return idb("readonly", function (s) { return s.get(SELF); }); };
  const save = function (v) { return idb("readwrite", function (s) { return s.put(v, SELF); }); };
  const forget = function () { return idb("readwrite", function (s) { return s.delete(SELF); }); };

  // auth signs a request as pushdevice.Device.Auth does.
  async function auth(key, deviceId, purpose, fields) {
    const nonce = crypto.getRandomValues(new Uint8Array(16));
    const ts = Date.now();
    const msg = encode([purpose, deviceId, String(ts), nonce].concat(fields || []));
    const sig = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key, msg);
    return { deviceId: deviceId, timestampMs: ts, nonce: b64(nonce), signature: b64(sig) };
  }

  // parseEnrollment reads what the account page gave: the bare token, or the
  // enrollment link twofactor-push:enroll?token=…&vapid=… (the VAPID key lets
  // this browser subscribe to Web Push).
  function parseEnrollment(text) {
    const i = text.indexOf("twofactor-push:enroll?");
    if (i < 0) return { token: text, vapid: "" };
    const q = new URLSearchParams(text.slice(i + "twofactor-push:enroll?".length));
    return { token: q.get("token") || "", vapid: q.get("vapid") || "" };
  }

  function fromB64url(s) {
    const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function within(ms, p) {
    return Promise.race([p, new Promise(function (_, reject) {
      setTimeout(function () { reject(new DOMException("no answer in time", "TimeoutError")); }, ms);
    })]);
  }

  // webPush subscribes this browser to Web Push with the server's VAPID key:
  // { sub: {url, p256dh, auth} }, or { why } naming why it polls instead (no key,
  // no Push API, or no push service answered: headless browsers have none).
  async function webPush(vapid) {
    if (!vapid) return { why: "no-vapid" };
    if (!("serviceWorker" in navigator) || !window.PushManager) return { why: "no-push-api" };
    try {
      await navigator.serviceWorker.register("/device-sw.js", { scope: "/device" });
      const reg = await within(5000, navigator.serviceWorker.ready);
      const s = await within(10000, reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: fromB64url(vapid) }));
      const j = s.toJSON();
      return { sub: { url: j.endpoint, p256dh: j.keys.p256dh, auth: j.keys.auth } };
    } catch (e) {
      return { why: "no-push-service", detail: e.name + ": " + e.message };
    }
  }

  async function enroll(form) {
    const en = parseEnrollment(form.elements.token.value.trim());
    const name = form.elements.name.value.trim();
    const wp = await webPush(en.vapid); // first: the permission prompt wants the click's activation
    const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
    const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
    const ep = wp.sub ? { kind: "webpush", url: wp.sub.url, p256dh: wp.sub.p256dh, auth: wp.sub.auth } : { kind: "poll", url: "", p256dh: "", auth: "" };
    // Enrollment's fields: token, public key, name, platform, then the endpoint
    // (kind, url, p256dh, auth, and the ntfy token: empty here).
    const a = await auth(pair.privateKey, "", "enroll", [en.token, spki, name, "web", ep.kind, ep.url, ep.p256dh, ep.auth, ""]);
    const r = await post("/device/api/enroll", { auth: a, token: en.token, publicKey: b64(spki), name: name, platform: "web", endpoint: ep });
    const dev = { key: pair.privateKey, deviceId: r.deviceId, userId: r.userId, delivery: ep.kind, why: wp.why || "", detail: wp.detail || "" };
    await save(dev);
    return dev;
  }

  const whyWords = {
    "no-vapid": "the enrollment named no VAPID key (paste the whole link, or the server has none)",
    "no-push-api": "this browser has no Push API here",
    "no-push-service": "no push service answered",
  };

  // showDelivery says how this device learns of sign-in requests.
  function showDelivery(dev) {
    const el = document.getElementById("device-delivery");
    el.dataset.delivery = dev.delivery || "poll";
    el.dataset.why = dev.why || "";
    el.textContent = dev.delivery === "webpush" ? "Woken by Web Push (and checking every 30 s)." :
      "Polling every second: " + (whyWords[dev.why] || "poll only") + (dev.detail ? " (" + dev.detail + ")" : "") + ".";
  }

  function describe(c) {
    const when = new Date(c.time).toLocaleString();
    return "Sign-in to " + (c.client || "an application") + " from " + (c.ip || "an unknown address") +
      (c.userAgent ? " (" + c.userAgent + ")" : "") + " at " + when + ".";
  }

  function deviceUI(dev) {
    const status = document.getElementById("device-status");
    const box = document.getElementById("device-request");
    const form = document.getElementById("device-answer");
    const input = document.getElementById("device-number");
    let current = null, answered = {};
    document.getElementById("device-enrolled").hidden = false;
    document.getElementById("device-user").textContent = dev.userId;
    document.getElementById("device-id").textContent = dev.deviceId;

    async function respond(decision) {
      if (!current) return;
      const id = current.challengeId, number = decision === "approve" ? input.value.trim() : "";
      answered[id] = true;
      current = null;
      box.hidden = true;
      try {
        const a = await auth(dev.key, dev.deviceId, "respond", [id, decision, number]);
        const r = await post("/device/api/respond", { auth: a, challengeId: id, decision: decision, number: number });
        const words = { approved: "Approved.", denied: "Denied.", wrong_number: "Wrong number: the sign-in was denied.", not_me: "Reported as not you: the sign-in was denied." };
        show(status, (words[r.result] || r.result) + (r.locked ? " Push approval is now locked for your account." : ""),
          r.result === "approved" ? "accepted" : "rejected");
      } catch (e) { show(status, e.message, "rejected"); }
    }
    form.addEventListener("submit", function (ev) { ev.preventDefault(); respond("approve"); });
    document.getElementById("device-deny").addEventListener("click", function () { respond("deny"); });
    document.getElementById("device-notme").addEventListener("click", function () { respond("not_me"); });
    document.getElementById("device-forget").addEventListener("click", async function () {
      await forget();
      window.location.reload();
    });

    // check fetches the pending requests and shows the first not answered yet.
    async function check() {
      if (current) return;
      try {
        const p = await post("/device/api/pending", { auth: await auth(dev.key, dev.deviceId, "list_pending", []) });
        const id = (p.pushes || []).find(function (x) { return !answered[x]; });
        if (!id || current) return;
        const a = await auth(dev.key, dev.deviceId, "get_context", [id]);
        const c = (await post("/device/api/context", { auth: a, challengeId: id })).context;
        current = c;
        document.getElementById("device-context").textContent = describe(c);
        const label = document.getElementById("device-number-label");
        input.value = "";
        input.hidden = c.numberMode === "none";
        label.hidden = input.hidden;
        if (c.numberMode === "choice") label.textContent = "Type the one of " + c.choices.join(", ") + " that the sign-in page shows";
        box.hidden = false;
        input.focus();
      } catch (e) { show(status, e.message, "rejected"); }
    }
    // Woken by Web Push, the page checks at each wake-up (and seldom otherwise,
    // in case one is lost); without it, it polls every second.
    const every = dev.delivery === "webpush" ? 30000 : 1000;
    if (dev.delivery === "webpush" && navigator.serviceWorker) {
      navigator.serviceWorker.addEventListener("message", function (ev) {
        if (ev.data && ev.data.type === "push") check();
      });
      navigator.serviceWorker.startMessages();
    }
    showDelivery(dev);
    async function poll() {
      await check();
      setTimeout(poll, every);
    }
    poll();
  }

  async function devicePage() {
    const status = document.getElementById("device-status");
    const form = document.getElementById("device-enroll");
    if (!window.crypto || !crypto.subtle || !window.indexedDB) {
      show(status, "This browser has no WebCrypto or IndexedDB here (open the demo on http://localhost or https).", "rejected");
      return;
    }
    const dev = await load();
    if (dev && dev.deviceId) { deviceUI(dev); return; }
    form.hidden = false;
    // The account page's link carries the enrollment in the fragment (never sent).
    if (window.location.hash.length > 1) form.elements.token.value = decodeURIComponent(window.location.hash.slice(1));
    form.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      const btn = form.querySelector("button");
      btn.disabled = true;
      try {
        const d = await enroll(form);
        form.hidden = true;
        show(status, "Enrolled.", "accepted");
        deviceUI(d);
      } catch (e) {
        show(status, e.message, "rejected");
        btn.disabled = false;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const btn = document.getElementById("push-signin");
    if (btn) btn.addEventListener("click", function () { pushSignin(btn); });
    if (document.getElementById("device")) devicePage();
  });
})();

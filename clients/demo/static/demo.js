// twofactor demo: the browser half of WebAuthn. The server hands out options as
// JSON (WebAuthn Level 3 §5.1.3 / §5.1.4 JSON forms) and takes credentials back
// as JSON (PublicKeyCredential.toJSON, §5.1.8). Older browsers lack those
// helpers, so base64url fields are converted by hand as a fallback.
"use strict";

(function () {
  function b64urlToBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function bufToB64url(buf) {
    if (!buf) return undefined;
    const bytes = new Uint8Array(buf);
    let bin = "";
    for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // unwrap accepts {"publicKey": {...}} (as go-webauthn marshals it) or the bare options.
  function unwrap(o) { return o && o.publicKey ? o.publicKey : o; }

  function creationOptions(json) {
    const o = unwrap(json);
    if (window.PublicKeyCredential && PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(o);
    }
    const c = Object.assign({}, o);
    c.challenge = b64urlToBuf(o.challenge);
    c.user = Object.assign({}, o.user, { id: b64urlToBuf(o.user.id) });
    c.excludeCredentials = (o.excludeCredentials || []).map(function (d) {
      return Object.assign({}, d, { id: b64urlToBuf(d.id) });
    });
    return c;
  }

  function requestOptions(json) {
    const o = unwrap(json);
    if (window.PublicKeyCredential && PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(o);
    }
    const r = Object.assign({}, o);
    r.challenge = b64urlToBuf(o.challenge);
    r.allowCredentials = (o.allowCredentials || []).map(function (d) {
      return Object.assign({}, d, { id: b64urlToBuf(d.id) });
    });
    return r;
  }

  // credentialJSON is PublicKeyCredential.toJSON(), or the same by hand.
  function credentialJSON(cred) {
    if (typeof cred.toJSON === "function") {
      try { return cred.toJSON(); } catch (e) { /* fall through */ }
    }
    const r = cred.response;
    const out = {
      id: cred.id,
      rawId: bufToB64url(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: bufToB64url(r.clientDataJSON) },
    };
    if (r.attestationObject) {
      out.response.attestationObject = bufToB64url(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = bufToB64url(r.authenticatorData);
      out.response.signature = bufToB64url(r.signature);
      if (r.userHandle && r.userHandle.byteLength) out.response.userHandle = bufToB64url(r.userHandle);
    }
    return out;
  }

  async function post(url, body) {
    const resp = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify(body),
    });
    let data;
    try { data = await resp.json(); } catch (e) {
      data = { ok: false, message: (await resp.text().catch(function () { return ""; })) || resp.statusText };
    }
    return data;
  }

  function show(kind, text) {
    const el = document.getElementById("webauthn-result");
    if (!el) { alert(text); return; }
    el.hidden = false;
    el.className = "result " + kind;
    el.textContent = text;
  }

  // The prompt waits at most promptTimeout, and a Cancel button beside the
  // status line ends it sooner (AbortController; WebAuthn Level 3 §5.1.3 step
  // "abort"). The server's options ask for the same bound.
  const promptTimeout = 120000;
  let pending = null;

  function startPrompt(options) {
    if (pending) pending.abort();
    const ctl = new AbortController();
    pending = ctl;
    options.timeout = Math.min(options.timeout || promptTimeout, promptTimeout);
    const timer = setTimeout(function () { ctl.abort(new DOMException("timed out", "TimeoutError")); }, promptTimeout);
    cancelButton(ctl);
    return { signal: ctl.signal, done: function () { clearTimeout(timer); if (pending === ctl) pending = null; cancelButton(null); } };
  }

  function cancelButton(ctl) {
    let b = document.getElementById("webauthn-cancel");
    if (!ctl) { if (b) b.hidden = true; return; }
    if (!b) {
      b = document.createElement("button");
      b.id = "webauthn-cancel";
      b.type = "button";
      b.textContent = "Cancel";
      const el = document.getElementById("webauthn-result");
      if (el && el.parentNode) el.parentNode.insertBefore(b, el.nextSibling); else document.body.appendChild(b);
    }
    b.hidden = false;
    b.onclick = function () { ctl.abort(new DOMException("cancelled", "AbortError")); };
  }

  function browserError(e) {
    if (e && e.name === "AbortError") return "Cancelled. Try again when your key is ready.";
    if (e && e.name === "TimeoutError") return "The prompt timed out after two minutes. Try again.";
    if (e && e.name === "NotAllowedError") return "The browser or the key refused, or the prompt was closed or timed out.";
    if (e && e.name === "InvalidStateError") return "This key is already registered for this user.";
    if (e && e.name === "SecurityError") return "The browser refused this origin for WebAuthn. Open the demo at http://localhost:8080.";
    return "WebAuthn failed: " + (e && e.message ? e.message : e);
  }

  function supported() {
    if (window.PublicKeyCredential && navigator.credentials) return true;
    show("rejected", "This browser does not support WebAuthn (or the page is not a secure context: use http://localhost:8080).");
    return false;
  }

  async function signIn(passkey) {
    if (!supported()) return;
    show("pending", passkey ? "Choose a passkey…" : "Touch your security key…");
    try {
      const begin = await post("/signin/webauthn/begin", { passkey: passkey });
      if (!begin.ok) {
        show("rejected", begin.message || "Could not start.");
        if (begin.redirect) setTimeout(function () { location.href = begin.redirect; }, 1500);
        return;
      }
      const opts = await requestOptions(begin.options);
      const p = startPrompt(opts);
      let cred;
      try { cred = await navigator.credentials.get({ publicKey: opts, signal: p.signal }); } finally { p.done(); }
      const remember = document.getElementById("webauthn-remember");
      const fin = await post("/signin/webauthn/finish" + (!passkey && remember && remember.checked ? "?remember=1" : ""), credentialJSON(cred));
      show(fin.result || (fin.ok ? "accepted" : "rejected"), fin.message || "");
      if (fin.ok && fin.redirect) location.href = fin.redirect;
    } catch (e) {
      show("rejected", browserError(e));
    }
  }

  async function enroll(ev) {
    ev.preventDefault();
    if (!supported()) return;
    const name = document.getElementById("wa-name").value;
    const discoverable = document.getElementById("wa-discoverable").checked;
    show("pending", "Touch your security key or confirm the passkey…");
    try {
      const begin = await post("/account/webauthn/begin", { name: name, discoverable: discoverable });
      if (!begin.ok) { show("rejected", begin.message || "Could not start."); return; }
      const opts = await creationOptions(begin.options);
      const p = startPrompt(opts);
      let cred;
      try {
        cred = await navigator.credentials.create({ publicKey: opts, signal: p.signal });
      } catch (e) {
        // Refused (already registered), cancelled or timed out: the pending
        // enrollment is dropped now rather than left until it expires.
        await post("/account/webauthn/cancel", { factorId: begin.factorId }).catch(function () {});
        throw e;
      } finally { p.done(); }
      const fin = await post("/account/webauthn/finish", { factorId: begin.factorId, credential: credentialJSON(cred) });
      show(fin.ok ? "accepted" : "rejected", fin.message || "");
      if (fin.ok && fin.redirect) location.href = fin.redirect;
    } catch (e) {
      show("rejected", browserError(e));
    }
  }

  // pollTelegram asks once a second whether the chat pressed Start (the status call
  // only checks; nothing is sent again) and goes on to the account page when it did.
  function pollTelegram(card) {
    const status = document.getElementById("telegram-status");
    async function poll() {
      let a;
      try {
        a = await post("/account/telegram/status", { factorId: card.dataset.factorId });
      } catch (e) {
        a = { result: "waiting", message: "authd did not answer; trying again…" };
      }
      if (a.ok && a.redirect) { location.href = a.redirect; return; }
      status.textContent = a.message || "Waiting…";
      if (a.result === "waiting") setTimeout(poll, 1000);
      else status.className = "result rejected";
    }
    setTimeout(poll, 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    const tg = document.getElementById("telegram-enroll");
    if (tg) pollTelegram(tg);
    const pk = document.getElementById("passkey-signin");
    if (pk) pk.addEventListener("click", function () { signIn(true); });
    const sk = document.getElementById("webauthn-signin");
    if (sk) sk.addEventListener("click", function () { signIn(false); });
    const en = document.getElementById("webauthn-enroll");
    if (en) en.addEventListener("submit", enroll);
    document.querySelectorAll("form[data-confirm]").forEach(function (f) {
      f.addEventListener("submit", function (ev) {
        if (!confirm(f.dataset.confirm)) ev.preventDefault();
      });
    });
  });
})();

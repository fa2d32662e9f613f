// twofactor demo: the device page's service worker (served as /device-sw.js,
// scope /device). A Web Push message is the opaque wake-up of notifyd (version,
// challenge id and device id; never the login's context or number). It tells
// the open device pages to fetch the pending requests now, and when none is in
// view shows a notification that opens the device page. The signing key never
// comes here: the page signs.
"use strict";

self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (ev) { ev.waitUntil(self.clients.claim()); });

function devicePages() {
  return self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (list) {
    return list.filter(function (c) { return new URL(c.url).pathname === "/device"; });
  });
}

self.addEventListener("push", function (ev) {
  let wake = {};
  try { wake = ev.data ? ev.data.json() : {}; } catch (e) { /* not JSON: still a wake-up */ }
  ev.waitUntil(devicePages().then(function (pages) {
    pages.forEach(function (c) { c.postMessage({ type: "push", challengeId: wake.challenge_id || "" }); });
    if (pages.some(function (c) { return c.visibilityState === "visible"; })) return undefined;
    return self.registration.showNotification("Sign-in request", {
      body: "Open the device page to see it and approve or deny.", tag: "twofactor-push", requireInteraction: true,
    });
  }));
});

self.addEventListener("notificationclick", function (ev) {
  ev.notification.close();
  ev.waitUntil(devicePages().then(function (pages) {
    if (pages.length > 0) return pages[0].focus();
    return self.clients.openWindow("/device");
  }));
});

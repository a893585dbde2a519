// The visit page's service worker (scope /visit: the page is at /visit/ and /visit; the
// script is served with Service-Worker-Allowed: /visit): keeps the page's own files so that the page opens
// without signal. Network first (a new version is used as soon as there is signal), the
// kept copy when the network fails. It never touches the API: what is recorded is sent by
// the page itself, once, with its idempotency key (visit.js), and a request this worker
// replayed could not be told apart from a second report.
"use strict";

const CACHE = "minqing-visit-v1";
const SHELL = ["/visit/", "/visit/visit.js", "/visit/visit.css"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith("minqing-visit-") && n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  const path = url.pathname === "/visit" || url.pathname === "/visit/index.html" ? "/visit/" : url.pathname;
  if (!SHELL.includes(path)) return; // the API and everything else: straight to the network
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          event.waitUntil(caches.open(CACHE).then((cache) => cache.put(path, copy)));
        }
        return response;
      })
      .catch(() => caches.match(path).then((kept) => kept || Response.error())),
  );
});

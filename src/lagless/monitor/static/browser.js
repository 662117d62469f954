// lagless browser timing: what the user felt for each API call of this page.
// Reads Resource Timing entries of the page's own fetch/XHR calls (and the Server-Timing
// header lagless adds, exposed as entry.serverTiming), and posts them in batches with
// navigator.sendBeacon to the URL this script was loaded from, minus ".js".
// Only the path of each call is sent: query strings may carry personal data.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !window.PerformanceObserver || !navigator.sendBeacon || !window.URL) return;
  var endpoint = script.src.replace(/\.js(\?.*)?$/, "");
  var endpointPath = new URL(endpoint, location.href).pathname;
  var MAX_ENTRIES = 50;
  var FLUSH_MS = 2000;
  var queue = [];
  var timer = null;

  function ms(x) {
    return Math.min(600000, Math.max(0, Math.round(x * 100) / 100));
  }

  function serverTotal(entry) {
    var timings = entry.serverTiming || [];
    for (var i = 0; i < timings.length; i++) {
      if (timings[i].name === "total") return ms(timings[i].duration);
    }
    return null;
  }

  function onEntry(entry) {
    if (entry.initiatorType !== "fetch" && entry.initiatorType !== "xmlhttprequest") return;
    var url;
    try {
      url = new URL(entry.name, location.href);
    } catch (err) {
      return;
    }
    if (url.origin !== location.origin || url.pathname === endpointPath) return;
    if (!entry.responseStart || !entry.requestStart) return; // no detail for this entry
    queue.push({
      url: url.pathname.slice(0, 2000),
      duration: ms(entry.responseEnd - entry.startTime),
      blocked: ms(entry.requestStart - entry.startTime),
      ttfb: ms(entry.responseStart - entry.requestStart),
      download: ms(entry.responseEnd - entry.responseStart),
      server: serverTotal(entry),
    });
    if (queue.length >= MAX_ENTRIES) flush();
    else if (timer === null) timer = setTimeout(flush, FLUSH_MS);
  }

  function flush() {
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
    while (queue.length) {
      var batch = queue.splice(0, MAX_ENTRIES);
      navigator.sendBeacon(endpoint, JSON.stringify({ v: 1, page: location.pathname, entries: batch }));
    }
  }

  new PerformanceObserver(function (list) {
    list.getEntries().forEach(onEntry);
  }).observe({ type: "resource", buffered: true });
  addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") flush();
  });
  addEventListener("pagehide", flush);
  window.laglessBrowserTiming = { flush: flush };
})();

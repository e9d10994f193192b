// Refreshes the status page in place every 30 seconds while it is visible
// (the <noscript> meta refresh does it when scripts are off): it fetches the
// page and swaps <main>, so a failed fetch (amtriage restarting behind a
// proxy) keeps what is shown, marked stale, and tries again later, backing
// off, instead of replacing the page with an error that never reloads.
(function () {
  "use strict";
  var period = 30000, max = 300000, delay = period;
  function schedule() { setTimeout(tick, delay); }
  function tick() {
    var main = document.getElementById("status");
    if (!main) return;
    if (document.hidden) { schedule(); return; }
    fetch(window.location.href, { cache: "no-store", headers: { "Accept": "text/html" } })
      .then(function (res) {
        if (!res.ok) throw new Error("HTTP " + res.status);
        return res.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("status");
        if (!fresh) throw new Error("no status in the answer");
        main.replaceChildren.apply(main, Array.prototype.map.call(fresh.childNodes, function (n) {
          return document.importNode(n, true);
        }));
        main.removeAttribute("data-stale");
        delay = period;
      })
      .catch(function () {
        main.setAttribute("data-stale", "true");
        delay = Math.min(delay * 2, max);
      })
      .then(schedule);
  }
  schedule();
})();

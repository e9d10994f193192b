// Reloads the status page every 30 seconds while it is visible: the
// <noscript> meta refresh does the same when scripts are off. A hidden tab
// reloads as soon as it is shown again, so nobody reads a stale page.
(function () {
  "use strict";
  var period = 30000;
  var due = Date.now() + period;
  function tick() {
    if (Date.now() < due) return;
    if (document.hidden) return;
    window.location.reload();
  }
  setInterval(tick, 5000);
  document.addEventListener("visibilitychange", tick);
})();

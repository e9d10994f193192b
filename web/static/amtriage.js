// amtriage's pages, enhanced: the pages work without this script (a
// <noscript> meta refresh reloads them); with it, <main> is refreshed in
// place every data-refresh seconds, and the rollback command gets a copy
// button. No framework, no build step; CSP allows only this file.
(function () {
  "use strict";

  function bindCopy(root) {
    root.querySelectorAll("button.copy[data-copy]").forEach(function (btn) {
      var target = document.getElementById(btn.getAttribute("data-copy"));
      if (!target || !navigator.clipboard) {
        return;
      }
      btn.hidden = false;
      btn.addEventListener("click", function () {
        navigator.clipboard.writeText(target.textContent).then(function () {
          btn.textContent = "Copied";
          setTimeout(function () { btn.textContent = "Copy"; }, 2000);
        }, function () {
          btn.textContent = "Copy failed: select the text";
        });
      });
    });
  }

  // busy: do not replace what a reader is selecting or focusing.
  function busy(main) {
    var sel = window.getSelection && window.getSelection();
    if (sel && !sel.isCollapsed && main.contains(sel.anchorNode)) {
      return true;
    }
    // A focused link or button (after a click) does not hold the refresh
    // back for good; only a form control being typed in does.
    var el = document.activeElement;
    return !!el && main.contains(el) && /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName);
  }

  // Errors back off (doubling up to 5 minutes); a 401 stops the refresh
  // and asks to sign in again: a wall screen must not poll a lost session.
  var period = 0, delay = 0, maxDelay = 300000;

  function schedule(main) {
    setTimeout(function () { refresh(main); }, delay);
  }

  function refresh(main) {
    if (document.hidden || busy(main)) {
      schedule(main);
      return;
    }
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" }, cache: "no-store" })
      .then(function (res) {
        if (res.status === 401) {
          main.setAttribute("data-stale", "signin");
          return null;
        }
        if (!res.ok) {
          throw new Error("HTTP " + res.status);
        }
        return res.text();
      })
      .then(function (html) {
        if (html === null) {
          return; // signed out: no more polling until the reader reloads
        }
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("main");
        if (fresh) {
          main.replaceChildren.apply(main, Array.prototype.map.call(fresh.childNodes, function (n) {
            return document.importNode(n, true);
          }));
          main.removeAttribute("data-stale");
          bindCopy(main);
        }
        delay = period;
        schedule(main);
      })
      .catch(function () {
        // Keep what is shown; mark it so a reader knows it may be old.
        main.setAttribute("data-stale", "true");
        delay = Math.min(delay * 2, maxDelay);
        schedule(main);
      });
  }

  function start() {
    var main = document.getElementById("main");
    if (!main) {
      return;
    }
    bindCopy(main);
    var every = parseInt(main.getAttribute("data-refresh"), 10);
    if (every > 0) {
      period = delay = every * 1000;
      schedule(main);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

// Live updates for the status page: every 5 seconds, fetch this same page and swap its <main>
// for the new one. The server renders everything (escaped); this only moves finished markup,
// parsed inertly by DOMParser, so nothing in it runs. Without JavaScript, reloading does the
// same. When the fetch fails, the page says the figures are not current.
(function () {
  "use strict";
  var EVERY_MS = 5000;
  var busy = false;

  function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    fetch(window.location.pathname, { cache: "no-store", headers: { Accept: "text/html" } })
      .then(function (r) {
        if (!r.ok && r.status !== 404) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("status");
        var current = document.getElementById("status");
        if (fresh && current) current.replaceWith(document.adoptNode(fresh));
        document.body.classList.remove("stale");
        // How many updates the page took (tests read it; it shows nothing).
        document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
      })
      .catch(function () {
        document.body.classList.add("stale");
      })
      .then(function () {
        busy = false;
      });
  }

  window.setInterval(refresh, EVERY_MS);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) refresh();
  });
})();

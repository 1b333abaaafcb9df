// Live queue: server-sent events say an episode of my sites opened, escalated or moved;
// the table body is then re-fetched (htmx) and new rows are highlighted.
(function () {
  "use strict";
  var known = new Set();
  var live = document.getElementById("live-state");
  function mark(initial) {
    document.querySelectorAll("#queue-rows tr[data-episode]").forEach(function (tr) {
      var id = tr.dataset.episode;
      if (!initial && !known.has(id)) { tr.classList.add("new"); }
      known.add(id);
    });
    var n = document.querySelectorAll("#queue-rows tr[data-episode]").length;
    document.getElementById("queue-count").textContent = n + " open";
  }
  mark(true);
  document.body.addEventListener("htmx:afterSwap", function (e) {
    if (e.target && e.target.id === "queue-rows") { mark(false); }
  });
  var pending = null;
  function refresh() {
    if (pending) { return; }
    pending = setTimeout(function () {
      pending = null;
      // never clobber a form being filled in
      var active = document.activeElement;
      if (active && active.closest && active.closest("#queue-rows form")) { refresh(); return; }
      htmx.trigger(document.body, "refresh-queue");
    }, 300);
  }
  var es = new EventSource("/queue/events");
  es.addEventListener("open", function () { live.textContent = "live"; live.dataset.state = "live"; });
  es.addEventListener("error", function () { live.textContent = "reconnecting…"; live.dataset.state = "down"; });
  es.addEventListener("episode", refresh);
})();

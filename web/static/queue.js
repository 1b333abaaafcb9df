// Live queue: server-sent events say an episode of my sites opened, escalated or moved; the
// table body is then re-fetched (htmx) and new rows are highlighted. Resolve, snooze and
// time logging use one shared dialog each (rows stay small with thousands of episodes).
(function () {
  "use strict";
  var known = new Set();
  var live = document.getElementById("live-state");
  var tbody = document.getElementById("queue-rows");
  var csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"];

  function mark(initial) {
    var rows = tbody.querySelectorAll("tr[data-patient]");
    rows.forEach(function (tr) {
      var id = tr.id;
      if (!initial && !known.has(id)) { tr.classList.add("new"); }
      known.add(id);
    });
    document.getElementById("queue-count").textContent = rows.length + " open";
  }
  mark(true);
  document.body.addEventListener("htmx:afterSwap", function (e) {
    if (e.target === tbody) { mark(false); }
  });
  var pending = null;
  function refresh() {
    if (pending) { return; }
    pending = setTimeout(function () {
      pending = null;
      if (document.querySelector("dialog[open]")) { refresh(); return; }
      htmx.trigger(document.body, "refresh-queue");
    }, 300);
  }
  var es = new EventSource("/queue/events");
  es.addEventListener("open", function () { live.textContent = "live"; });
  es.addEventListener("error", function () { live.textContent = "reconnecting…"; });
  es.addEventListener("episode", refresh);

  function episodeOf(tr) { return tr.id.slice(3); }

  function post(tr, action, body) {
    var url = "/queue/episodes/" + episodeOf(tr) + "/" + action;
    if (action === "time") {
      url = "/queue/patients/" + tr.dataset.patient + "/time";
      body.append("episode_id", episodeOf(tr));
    }
    return fetch(url, { method: "POST", body: body, headers: { "X-CSRF-Token": csrf, "HX-Request": "true" } })
      .then(function (resp) { return resp.text().then(function (text) { return [resp.ok, text]; }); })
      .then(function (res) {
        var flash = document.getElementById("flash");
        if (!res[0]) { flash.textContent = "Could not " + action + ": " + res[1]; return; }
        if (action === "time") { flash.innerHTML = res[1]; return; }
        flash.textContent = "Episode " + episodeOf(tr).slice(0, 8) + ": " + action + " done.";
        var tmp = document.createElement("tbody");
        tmp.innerHTML = res[1];
        var row = tmp.querySelector("tr");
        if (row) { tr.replaceWith(row); known.add(row.id); }
      });
  }

  var current = null;
  tbody.addEventListener("click", function (e) {
    var quick = e.target.closest("button.claim, button.ack");
    if (quick) {
      post(quick.closest("tr"), quick.className === "ack" ? "acknowledge" : "claim", new FormData());
      return;
    }
    var btn = e.target.closest("button.resolve, button.snooze, button.time");
    if (!btn) { return; }
    current = btn.closest("tr");
    var dlg = document.getElementById("dlg-" + btn.className);
    dlg.querySelector("form").reset();
    dlg.showModal();
  });
  document.querySelectorAll("dialog form").forEach(function (form) {
    form.querySelector("button[value=cancel]").addEventListener("click", function () {
      form.closest("dialog").close();
    });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      form.closest("dialog").close();
      post(current, form.dataset.action, new FormData(form));
    });
  });
})();

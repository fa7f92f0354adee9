// ivr-engine console: the few live parts (no inline script: the CSP forbids it).
// - Trees: lights up the path of the "try it" walk on the graph (ids from #walk[data-ids]).
// - Calls: the table's rows pushed by the engine (server-sent events), the time on the line.
(function () {
  "use strict";

  function highlight() {
    var graph = document.getElementById("graph");
    if (!graph) { return; }
    graph.querySelectorAll(".hit").forEach(function (el) { el.classList.remove("hit"); });
    var walk = document.getElementById("walk");
    var ids = walk && walk.dataset.ids ? walk.dataset.ids.split(" ") : [];
    ids.forEach(function (id, i) {
      var node = document.getElementById(id);
      if (node && graph.contains(node)) { node.classList.add("hit"); }
      if (i > 0) {
        var edges = "g.edge.from-" + CSS.escape(ids[i - 1]) + ".to-" + CSS.escape(id);
        graph.querySelectorAll(edges).forEach(function (el) { el.classList.add("hit"); });
      }
    });
  }

  function since(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var m = Math.floor(s / 60) % 60, h = Math.floor(s / 3600), r = s % 60;
    var mm = h ? String(m).padStart(2, "0") : String(Math.floor(s / 60));
    return (h ? h + ":" : "") + mm + ":" + String(r).padStart(2, "0");
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("td.since[data-since]").forEach(function (td) {
      var t = Date.parse(td.dataset.since);
      if (!isNaN(t)) { td.textContent = since((now - t) / 1000); }
    });
  }

  function liveCalls() {
    var rows = document.getElementById("calls-rows");
    if (!rows || !window.EventSource) { return; }
    var state = document.getElementById("calls-live");
    var count = document.getElementById("calls-count");
    var source = new EventSource("/console/calls/events");
    source.addEventListener("calls", function (event) {
      rows.innerHTML = event.data;
      count.textContent = String(rows.querySelectorAll("tr[id^='call-']").length);
      state.dataset.state = "live";
      tick();
    });
    source.addEventListener("error", function () { state.dataset.state = "reconnecting"; });
    window.setInterval(tick, 1000);
  }

  document.body.addEventListener("htmx:afterSwap", highlight);
  highlight();
  liveCalls();
}());

// Patient charts with uPlot. Data comes from the page (<script id="chart-data">).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("chart-data").textContent);
  var th = data.thresholds;
  var rendered = 0;

  function line(t, value) { return t.map(function () { return value; }); }

  function chart(id, seriesDefs, cols) {
    var el = document.getElementById(id);
    if (!el) { return; }
    var width = Math.max(320, el.clientWidth || 560);
    var opts = {
      width: width, height: 240,
      series: [{}].concat(seriesDefs),
      scales: { x: { time: true, range: function () { return data.x_range; } } },
      axes: [{}, {}],
      legend: { live: true },
    };
    if (cols[0].length === 0) {
      el.innerHTML = '<p class="muted">No data in this range.</p>';
      el.dataset.rendered = "empty";
      rendered++;
      return;
    }
    new uPlot(opts, cols, el);
    el.dataset.rendered = "chart";
    rendered++;
  }

  var s = data.series;
  var pts = { show: true, size: 4 };
  var bpSeries = [
    { label: "systolic", stroke: "#b00020", points: pts, spanGaps: true },
    { label: "diastolic", stroke: "#0b57d0", points: pts, spanGaps: true },
  ];
  var bpCols = [s.bp.t, s.bp.systolic, s.bp.diastolic];
  [["systolic_high", "#b00020"], ["diastolic_high", "#0b57d0"], ["systolic_low", "#777"]].forEach(function (x) {
    if (th[x[0]] != null) {
      bpSeries.push({ label: x[0].replace("_", " ") + " " + th[x[0]], stroke: x[1], dash: [6, 4], width: 1, points: { show: false } });
      bpCols.push(line(s.bp.t, th[x[0]]));
    }
  });
  chart("chart-bp", bpSeries, bpCols);
  chart("chart-pulse", [{ label: "pulse", stroke: "#444", points: pts, spanGaps: true }], [s.pulse.t, s.pulse.pulse]);
  chart("chart-glucose", [
    { label: "glucose", stroke: "#6a1b9a", points: pts, spanGaps: true },
    { label: "target low " + th.glucose_low, stroke: "#2e7d32", dash: [6, 4], width: 1, points: { show: false } },
    { label: "target high " + th.glucose_high, stroke: "#2e7d32", dash: [6, 4], width: 1, points: { show: false } },
  ], [s.glucose.t, s.glucose.glucose, line(s.glucose.t, th.glucose_low), line(s.glucose.t, th.glucose_high)]);
  chart("chart-weight", [{ label: "weight", stroke: "#00695c", points: pts, spanGaps: true }], [s.weight.t, s.weight.body_weight]);
  document.body.dataset.chartsRendered = String(rendered);
})();

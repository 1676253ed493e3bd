// keygate dashboard: the little behaviour the pages need beyond htmx.
// Loaded from this origin only (the Content-Security-Policy allows no
// inline script); no eval, no inline handlers.
(function () {
  "use strict";

  // Copy a shown-once secret to the clipboard.
  function setupCopy() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var field = document.getElementById(button.getAttribute("data-copy"));
        var status = document.getElementById("copy-status");
        if (!field) return;
        var done = function (ok) {
          if (status) status.textContent = ok ? "Copied." : "Select the secret and copy it.";
        };
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(field.value).then(function () { done(true); }, function () {
            field.select();
            done(false);
          });
        } else {
          field.select();
          done(false);
        }
      });
    });
  }

  // Ask before an irreversible change.
  function setupConfirm() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  }

  var PALETTE = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0969da", "#57606a"];

  function fillTable(data) {
    var body = document.querySelector("#chart-table tbody");
    if (!body) return;
    body.textContent = "";
    data.lines.forEach(function (line) {
      var row = document.createElement("tr");
      var name = document.createElement("th");
      name.scope = "row";
      name.textContent = line.name;
      var total = document.createElement("td");
      total.textContent = line.values.reduce(function (a, b) { return a + b; }, 0).toString();
      row.appendChild(name);
      row.appendChild(total);
      body.appendChild(row);
    });
  }

  // The overview's chart: fetched as JSON, drawn with uPlot, refetched
  // every 15 seconds and whenever a control changes.
  function setupChart() {
    var box = document.getElementById("chart");
    if (!box || typeof window.uPlot === "undefined") return;
    var form = document.getElementById("chart-controls");
    var plot = null;
    var load = function () {
      var params = new URLSearchParams(new FormData(form));
      fetch(box.getAttribute("data-series") + "?" + params.toString(), {
        credentials: "same-origin",
        headers: { "accept": "application/json" }
      }).then(function (r) {
        if (r.redirected || !r.ok) throw new Error("status " + r.status);
        return r.json();
      }).then(function (data) {
        var series = [{}];
        var values = [data.buckets];
        data.lines.forEach(function (line, i) {
          series.push({ label: line.name, stroke: PALETTE[i % PALETTE.length], width: 2 });
          values.push(line.values);
        });
        if (plot) plot.destroy();
        var width = Math.max(320, box.clientWidth || 800);
        plot = new window.uPlot({ width: width, height: 300, series: series, scales: { x: { time: true } } }, values, box);
        box.setAttribute("data-lines", String(data.lines.length));
        fillTable(data);
      }).catch(function () {
        box.setAttribute("data-error", "true");
      });
    };
    form.addEventListener("change", load);
    form.addEventListener("submit", function (e) { e.preventDefault(); load(); });
    load();
    window.setInterval(load, 15000);
  }

  function start() {
    setupCopy();
    setupConfirm();
    setupChart();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

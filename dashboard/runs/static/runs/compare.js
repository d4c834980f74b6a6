// Run comparison, both ends:
// - runs list: the tick boxes enable "Compare selected" for 2 to 10 runs and open /compare/?runs=A,B,...
// - compare page: the "differences only" and x-axis switches work in place, and the address always says
//   what is shown (history.replaceState), so it can be copied and shared.
(function () {
  "use strict";

  var MIN_RUNS = 2, MAX_RUNS = 10;

  // Like Python's quote(value, safe="/"): slashes (PROJECT/NAME) stay readable.
  function enc(value) {
    return encodeURIComponent(value).replace(/%2F/gi, "/");
  }

  function runsList() {
    var form = document.getElementById("compare-form");
    if (!form) return;
    var button = document.getElementById("compare-button");
    var count = document.getElementById("compare-count");
    var boxes = Array.prototype.slice.call(form.querySelectorAll('input[type="checkbox"][name="runs"]'));

    function ticked() {
      return boxes.filter(function (box) { return box.checked; }).map(function (box) { return box.value; });
    }

    function update() {
      var n = ticked().length;
      button.disabled = n < MIN_RUNS || n > MAX_RUNS;
      if (n === 0) count.textContent = "tick 2 to 10 runs";
      else if (n < MIN_RUNS) count.textContent = "1 ticked: tick one more";
      else if (n > MAX_RUNS) count.textContent = n + " ticked: at most " + MAX_RUNS;
      else count.textContent = n + " ticked";
    }

    boxes.forEach(function (box) { box.addEventListener("change", update); });
    form.addEventListener("submit", function (event) {
      var values = ticked();
      event.preventDefault();
      if (values.length < MIN_RUNS || values.length > MAX_RUNS) return;
      // A name holding a comma cannot sit in the comma-separated form: repeat the parameter instead.
      var query = values.some(function (v) { return v.indexOf(",") >= 0; })
        ? values.map(function (v) { return "runs=" + enc(v); }).join("&")
        : "runs=" + values.map(enc).join(",");
      window.location.assign(form.action + "?" + query);
    });
    update();
  }

  function comparePage() {
    var controls = document.getElementById("compare-controls");
    if (!controls) return;
    var table = document.getElementById("compare-table");
    var diff = document.getElementById("diff-only");
    var baseline = document.getElementById("baseline");
    var share = document.getElementById("share-link");
    var radios = Array.prototype.slice.call(controls.querySelectorAll('input[name="x"]'));

    function axis() {
      var picked = radios.filter(function (r) { return r.checked; })[0];
      return picked ? picked.value : "time";
    }

    // Mirrors dashboard.compare.canonical_query: runs, baseline (unless the first), diff, x (unless time).
    function query() {
      var q = controls.dataset.runs;
      if (baseline.selectedIndex > 0) q += "&baseline=" + enc(baseline.value);
      if (diff.checked) q += "&diff=1";
      if (axis() !== "time") q += "&x=" + axis();
      return q;
    }

    function remember() {
      var address = window.location.pathname + "?" + query();
      history.replaceState(null, "", address);
      share.value = window.location.origin + address;
    }

    function showAxis(value) {
      document.querySelectorAll("section.charts[data-x]").forEach(function (section) {
        section.hidden = section.dataset.x !== value;
        if (section.hidden) return;
        // Charts of an axis not shown at first are drawn on first view: hidden charts draw at the wrong size.
        section.querySelectorAll("script[data-lazy-plot]").forEach(function (element) {
          var figure = JSON.parse(element.textContent);
          var target = document.getElementById(element.dataset.lazyPlot);
          window.wattwisePlot(target, figure);
          element.removeAttribute("data-lazy-plot");
        });
        section.querySelectorAll(".js-plotly-plot").forEach(function (plot) { Plotly.Plots.resize(plot); });
      });
    }

    diff.addEventListener("change", function () {
      table.classList.toggle("diff-only", diff.checked);
      remember();
    });
    radios.forEach(function (radio) {
      radio.addEventListener("change", function () { showAxis(axis()); remember(); });
    });
    // Differences are worked out on the server: a new baseline reloads the page at its new address.
    baseline.addEventListener("change", function () {
      window.location.assign(window.location.pathname + "?" + query());
    });
    remember();
  }

  document.addEventListener("DOMContentLoaded", function () {
    runsList();
    comparePage();
  });
})();

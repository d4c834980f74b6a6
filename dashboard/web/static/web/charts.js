// Draw every figure whose JSON sits in a <script type="application/json" data-plot="DIV-ID"> element, and,
// on a streaming run's page, fetch fresh cards and figures every few seconds and redraw them in place.
(function () {
  "use strict";
  var CONFIG = {displaylogo: false, responsive: true};

  // A responsive plot takes its box's height on a window resize; a box sized to the figure's own height
  // keeps it from shrinking to the CSS min-height and spilling over what follows.
  function sizeBox(target, layout) {
    if (layout && layout.height) { target.style.height = layout.height + "px"; }
  }

  // For other scripts that draw figures later (the compare page's lazily drawn step charts).
  window.wattwisePlot = function (target, figure) {
    sizeBox(target, figure.layout);
    return Plotly.newPlot(target, figure.data, figure.layout, CONFIG);
  };

  function draw(divId, figure) {
    var target = document.getElementById(divId);
    if (!target) {
      // A chart the page did not have yet (the first samples of a run arrived while it was open).
      var charts = document.getElementById("charts");
      if (!charts) { return; }
      target = document.createElement("div");
      target.id = divId;
      target.className = charts.children.length ? "chart" : "chart wide";
      charts.appendChild(target);
    }
    // Plotly.react keeps the user's zoom and hidden traces because every figure has the same uirevision.
    sizeBox(target, figure.layout);
    Plotly.react(target, figure.data, figure.layout, CONFIG);
  }

  function startLive(live) {
    var url = live.dataset.url;
    var periodMs = 1000 * (parseFloat(live.dataset.pollS) || 5);
    var stamp = document.getElementById("live-updated");
    var timer = null;
    var busy = false;

    function stop(message) {
      if (timer !== null) { clearInterval(timer); timer = null; }
      live.classList.add("stopped");
      var text = document.getElementById("live-text");
      if (message && text) { text.textContent = message; }
    }

    function refresh() {
      if (busy || document.hidden) { return; }
      busy = true;
      fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (response) {
          if (response.redirected || response.status === 401 || response.status === 403) {
            stop("Live updates stopped: your session ended. Reload to sign in again.");
            return null;
          }
          return response.ok ? response.json() : null;
        })
        .then(function (payload) {
          if (!payload) { return; }
          var cards = document.getElementById("cards");
          if (cards) { cards.innerHTML = payload.cards_html; }
          var span = document.getElementById("sample-span");
          if (span && payload.span_html) { span.innerHTML = payload.span_html; }
          var status = document.getElementById("run-status");
          if (status) { status.textContent = payload.status; status.className = "status " + payload.status; }
          Object.keys(payload.plots).forEach(function (divId) { draw(divId, payload.plots[divId]); });
          var empty = document.getElementById("charts-empty");
          if (empty) { empty.hidden = !payload.empty; }
          if (stamp) { stamp.textContent = "Updated " + new Date().toISOString().slice(11, 19) + " UTC"; }
          live.dataset.updates = String((parseInt(live.dataset.updates, 10) || 0) + 1);
          if (payload.status === "interrupted") {
            stop("Its agents went silent without closing: the run is interrupted. Reload to see whether it resumed.");
          } else if (payload.status !== "running") { stop("The run has finished: these are its final figures."); }
        })
        .catch(function () { /* a dropped poll is retried on the next tick */ })
        .then(function () { busy = false; });
    }

    timer = setInterval(refresh, periodMs);
    document.addEventListener("visibilitychange", function () { if (!document.hidden && timer !== null) { refresh(); } });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll('script[type="application/json"][data-plot]').forEach(function (element) {
      var figure = JSON.parse(element.textContent);
      var target = document.getElementById(element.dataset.plot);
      sizeBox(target, figure.layout);
      Plotly.newPlot(target, figure.data, figure.layout, CONFIG);
    });
    // Long tables behind a <details data-fragment="URL"> are fetched the first time they are opened.
    document.querySelectorAll("details[data-fragment]").forEach(function (details) {
      details.addEventListener("toggle", function () {
        if (!details.open || details.dataset.loaded) { return; }
        details.dataset.loaded = "1";
        fetch(details.dataset.fragment, {credentials: "same-origin"})
          .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
          .then(function (html) { details.querySelector(".fragment-body").innerHTML = html; })
          .catch(function () { delete details.dataset.loaded; });
      });
    });
    var live = document.getElementById("live");
    if (live) { startLive(live); }
  });
})();

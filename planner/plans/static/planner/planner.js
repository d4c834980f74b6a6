// Planner pages: follow a solve's progress, and open a plan by clicking its point on the frontier.
(function () {
  "use strict";

  function followProgress(box) {
    var url = box.dataset.statusUrl;
    var bar = box.querySelector("progress");
    var text = box.querySelector("[data-progress-text]");
    var seen = {};
    function record(status) {
      seen[status] = true;
      box.dataset.seen = Object.keys(seen).join(" ");
      box.dataset.status = status;
    }
    record(box.dataset.status);
    function poll() {
      fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
        .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
        .then(function (s) {
          record(s.status);
          if (s.status === "done" || s.status === "failed") {
            window.location.reload();
            return;
          }
          if (s.status === "running" && s.total > 0) {
            bar.max = s.total;
            bar.value = s.done;
            text.textContent = "Solving: " + s.done.toLocaleString() + " of about " + s.total.toLocaleString() +
              " steps (" + Math.round(100 * s.fraction) + " %)";
          } else if (s.status === "running") {
            bar.removeAttribute("value");
            text.textContent = "Solving: preparing the options and the cost model…";
          }
          window.setTimeout(poll, 700);
        })
        .catch(function () { window.setTimeout(poll, 2000); });
    }
    window.setTimeout(poll, 400);
  }

  function openPlanOnClick(chart) {
    var template = chart.dataset.planUrl;
    if (!template || typeof chart.on !== "function") { return false; }
    chart.on("plotly_click", function (event) {
      var point = event.points && event.points[0];
      if (point && point.customdata && point.customdata.length) {
        window.location.href = template.replace("__K__", String(Math.round(point.customdata[0])));
      }
    });
    return true;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("solve-progress");
    if (box) { followProgress(box); }
  });
  window.addEventListener("load", function () {
    document.querySelectorAll("[data-plan-url]").forEach(function (chart) {
      if (!openPlanOnClick(chart)) {
        window.setTimeout(function () { openPlanOnClick(chart); }, 500);
      }
    });
  });
})();

// The intensity data page: follow the user's uploads while a worker imports them.
(function () {
  "use strict";

  function follow(item) {
    var url = item.dataset.statusUrl;
    var bar = item.querySelector("progress");
    var state = item.querySelector("[data-job-state]");
    var progress = item.querySelector("[data-job-progress]");
    function poll() {
      fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
        .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
        .then(function (job) {
          item.dataset.state = job.state;
          if (job.finished) {
            window.location.reload();  // the new figures, the coverage and the message
            return;
          }
          state.textContent = job.state === "running" ? "importing" : "queued";
          if (bar) { bar.value = job.fraction; }
          if (progress) {
            progress.textContent = job.rows_read.toLocaleString() + " rows read (" +
              Math.round(100 * job.fraction) + " % of the file)";
          }
          window.setTimeout(poll, 700);
        })
        .catch(function () { window.setTimeout(poll, 2000); });
    }
    window.setTimeout(poll, 400);
  }

  document.querySelectorAll("#import-jobs [data-status-url]").forEach(function (item) {
    if (item.dataset.state === "queued" || item.dataset.state === "running") { follow(item); }
  });
})();

// Draw every figure whose JSON sits in a <script type="application/json" data-plot="DIV-ID"> element.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll('script[type="application/json"][data-plot]').forEach(function (element) {
    var figure = JSON.parse(element.textContent);
    var target = document.getElementById(element.dataset.plot);
    Plotly.newPlot(target, figure.data, figure.layout, {displaylogo: false, responsive: true});
  });
});

"""What every app's pages and API operations share: figure helpers, quantity formatting, the API's
parameter shapes, static files (the stylesheet, the chart script, plotly.js) and the health check."""

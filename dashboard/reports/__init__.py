"""Reports: a model card's ``co2_eq_emissions`` block and a project's period reports (HTML, PDF, CSV, Markdown)."""

"""Demo app: simulated data for trying Wattwise (``seed_demo``, ``stream_demo``) and for measuring it at
fleet scale (``bulk_load_run``). It sits above every other app and nothing imports it."""

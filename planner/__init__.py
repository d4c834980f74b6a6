"""The planner: frequency plans and carbon, each as a pure library and a Django app over it.

* :mod:`planner.perseus`: Perseus critical-path frequency planning (pure; ``python -m planner``).
* :mod:`planner.grid_carbon`: grid carbon intensity, emissions and offsets maths and data (pure).
* :mod:`planner.plans`: the frequency-plans Django app.
* :mod:`planner.carbon`: the carbon Django app.

Importing this package loads no Django: the libraries must stay usable without it.
"""

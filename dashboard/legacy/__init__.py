"""Migration history from before the apps were split (app labels ``dashboard`` and ``api``).

These two apps hold no code. Their migrations still create the tables on a new database, and their
last migration hands the models over to ``projects`` and ``telemetry`` in Django's migration state
only: the tables keep their names and their rows, so a database created before the split upgrades
with a plain ``manage.py migrate``.
"""

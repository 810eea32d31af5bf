"""Dagster wiring only: resources, partitions, assets, checks, jobs, schedules and sensors.

Nothing imports this package except ``definitions.py``, ``cli.py`` and the tests.
"""

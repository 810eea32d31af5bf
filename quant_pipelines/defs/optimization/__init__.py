"""Backtest optimizer wiring: study runs (``assets.py``), the leaderboard and its gate
(``leaderboard.py``), jobs, the nightly study schedules, the request sensor and the run-status
sensors that own the request lifecycle (``sensors.py``), and the parallel-study job."""

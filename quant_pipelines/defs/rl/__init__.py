"""RL runner wiring: ``assets.py`` (a policy per symbol, its held-out replay), ``jobs.py``
(``rl_training_job`` and the weekly schedule)."""

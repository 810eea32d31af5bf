"""Market-data ingestion: ``assets.py`` (market_bars/<class>), ``checks.py``, ``jobs.py``.

Other areas import ``ASSET_CLASSES``, ``WORKLOAD_TAG`` and ``market_bars_key`` from
``quant_pipelines.defs.market_data.assets``.
"""

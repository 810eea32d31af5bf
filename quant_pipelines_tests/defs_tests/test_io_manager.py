from __future__ import annotations

import dagster as dg
import pandas as pd

from quant_pipelines.defs.resources import MongoIOManager, MongoResource

DAYS = dg.StaticPartitionsDefinition(["2024-01-02", "2024-01-03"])
ROWS = {"2024-01-02": 3, "2024-01-03": 2}


@dg.asset(partitions_def=DAYS, io_manager_key="mongo_io")
def daily_table(context) -> pd.DataFrame:
    """A small partitioned frame whose size depends on a run config knob."""
    n = ROWS[context.partition_key]
    index = pd.date_range(context.partition_key, periods=n, freq="h", tz="UTC", name="ts")
    return pd.DataFrame({"x": range(n), "label": [f"r{i}" for i in range(n)]}, index=index)


@dg.asset(partitions_def=DAYS, io_manager_key="mongo_io")
def doubled(daily_table: pd.DataFrame) -> pd.DataFrame:
    """Reads the upstream partition back through the IO manager."""
    return daily_table.assign(x=daily_table["x"] * 2)


def test_partitioned_round_trip_and_rerun_replaces_only_its_partition(
    mongo_resource: MongoResource, mongo_db
) -> None:
    resources = {"mongo_io": MongoIOManager(mongo=mongo_resource), "mongo": mongo_resource}
    for key in DAYS.get_partition_keys():
        assert dg.materialize(
            [daily_table, doubled], resources=resources, partition_key=key
        ).success
    coll = mongo_db["io_daily_table"]
    assert coll.count_documents({}) == 5
    back = list(mongo_db["io_doubled"].find({"_partition": "2024-01-02"}).sort("_row", 1))
    assert [d["x"] for d in back] == [0, 2, 4]
    assert back[0]["ts"].tzinfo is not None

    ROWS["2024-01-02"] = 1
    try:
        dg.materialize([daily_table], resources=resources, partition_key="2024-01-02")
    finally:
        ROWS["2024-01-02"] = 3
    assert coll.count_documents({"_partition": "2024-01-02"}) == 1
    assert coll.count_documents({"_partition": "2024-01-03"}) == 2

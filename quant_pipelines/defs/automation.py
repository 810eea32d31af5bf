"""Sensors that run by default: declarative automation, and the universe's symbol partitions."""

from __future__ import annotations

import dagster as dg

from quant_pipelines.defs.partitions import SYMBOL_PARTITIONS, symbol_partitions
from quant_pipelines.defs.resources import UniverseResource

#: Evaluates every asset's ``automation_condition`` (on_cron, eager ...); on by default.
default_automation_condition_sensor = dg.AutomationConditionSensorDefinition(
    "default_automation_condition_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Evaluates the automation conditions of every asset.",
)


@dg.sensor(
    name="universe_symbols_sensor",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Keeps the symbol partitions equal to the universe's symbols.",
)
def universe_symbols_sensor(
    context: dg.SensorEvaluationContext, universe: UniverseResource
) -> dg.SensorResult | dg.SkipReason:
    """Adds the universe's new symbols as partitions and deletes those it no longer lists."""
    wanted = list(universe.load().names)
    existing = set(context.instance.get_dynamic_partitions(SYMBOL_PARTITIONS))
    added = [s for s in wanted if s not in existing]
    removed = sorted(existing - set(wanted))
    if not added and not removed:
        return dg.SkipReason(f"{len(wanted)} symbol partitions match the universe")
    requests = []
    if added:
        requests.append(symbol_partitions.build_add_request(added))
    if removed:
        requests.append(symbol_partitions.build_delete_request(removed))
    return dg.SensorResult(dynamic_partitions_requests=requests)

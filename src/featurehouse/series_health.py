"""The health of each entity's time series in an ingestion run, for data sets that declare
one (`RawDataset.series`): one status per entity, so a bad series is named, not silently
smoothed over, and never stops the others.

Per entity, over the rows this run read:

- duplicate timestamps: rows refused as duplicates of a row with the same time;
- backwards steps: a row whose time is before the previous row's in the same file;
- gaps: steps between consecutive times longer than the declared `every`, and how many
  samples they miss;
- the longest constant stretch: consecutive samples with the same value (a stuck sensor);
- too little history: fewer samples than `min_rows`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, Window

from featurehouse.usecase import RawDataset

OK = "ok"


@dataclass(frozen=True)
class SeriesHealth:
    entity: str  # "key=value, ..." of the entity
    rows: int
    duplicates: int
    backwards: int
    gaps: int
    missing: int  # samples the gaps miss
    constant_rows: int  # the longest run of one value
    status: str  # "ok", or the problems, "; "-separated


def series_health(validated: DataFrame, dataset: RawDataset, duplicate: str) -> list[SeriesHealth]:
    """The status of every entity in `validated` (the run's rows with `_reason`,
    `_superseded`, `_source_file` and `_position`; `duplicate` is the duplicates' reason)."""
    series = dataset.series
    keys, time, value = list(series.entity), dataset.event_time, series.value
    every = series.every.total_seconds()
    parsed = validated.where(F.col("_reason").isNull() | (F.col("_reason") == duplicate))
    good = parsed.where(F.col("_reason").isNull() & ~F.col("_superseded"))

    in_file = Window.partitionBy(*keys, "_source_file").orderBy("_position")
    backwards = (
        parsed.withColumn("_back", F.col(time) < F.lag(time).over(in_file))
        .groupBy(*keys)
        .agg(
            F.count_if(F.col("_back")).alias("backwards"),
            F.count_if(F.col("_reason") == duplicate).alias("duplicates"),
        )
    )
    in_time = Window.partitionBy(*keys).orderBy(time)
    step = F.unix_seconds(F.col(time)) - F.unix_seconds(F.lag(time).over(in_time))
    changed = ~F.lag(value).over(in_time).eqNullSafe(F.col(value))
    steps = good.select(
        *keys,
        F.when(step > every, F.round(step / every) - 1).alias("_missing"),
        F.sum(changed.cast("int")).over(in_time).alias("_run"),
    )
    runs = steps.groupBy(*keys, "_run").agg(F.count("*").alias("_length"))
    per_entity = (
        steps.groupBy(*keys)
        .agg(
            F.count("*").alias("rows"),
            F.count("_missing").alias("gaps"),
            F.coalesce(F.sum("_missing"), F.lit(0)).cast("bigint").alias("missing"),
        )
        .join(runs.groupBy(*keys).agg(F.max("_length").alias("constant_rows")), keys)
        .join(backwards, keys, "full_outer")
    )
    health = [
        _health(row, keys, series.every, series.min_rows, series.constant_rows)
        for row in per_entity.collect()
    ]
    return sorted(health, key=lambda h: h.entity)


def _health(row, keys, every: timedelta, min_rows: int, constant_limit: int) -> SeriesHealth:
    rows, gaps, missing = row["rows"] or 0, row["gaps"] or 0, row["missing"] or 0
    constant = row["constant_rows"] or 0
    duplicates, backwards = row["duplicates"] or 0, row["backwards"] or 0
    problems = []
    if rows < min_rows:
        problems.append(f"too little history: {rows} samples, {min_rows} needed")
    if gaps:
        problems.append(f"{_count(gaps, 'gap')} ({_count(missing, 'missing sample')})")
    if duplicates:
        problems.append(f"{_count(duplicates, 'duplicate timestamp')} (quarantined)")
    if backwards:
        problems.append(f"{_count(backwards, 'backwards step')} in time")
    if constant >= constant_limit:
        hours = (every * (constant - 1)).total_seconds() / 3600
        problems.append(f"constant for {hours:.1f} h ({constant} samples)")
    return SeriesHealth(
        entity=", ".join(f"{k}={row[k]}" for k in keys),
        rows=rows,
        duplicates=duplicates,
        backwards=backwards,
        gaps=gaps,
        missing=missing,
        constant_rows=constant,
        status="; ".join(problems) or OK,
    )


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def health_summary(health: list[SeriesHealth]) -> str:
    """E.g. "17 series: 16 ok; series=ec2_a: 2 gaps (5 missing samples)"."""
    problems = [h for h in health if h.status != OK]
    ok = len(health) - len(problems)
    named = "".join(f"; {h.entity}: {h.status}" for h in problems)
    return f"{len(health)} series: {ok} ok{named}"

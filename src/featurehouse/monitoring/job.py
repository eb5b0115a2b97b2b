"""The drift job: the newest window of features and predictions, over every row, against the
champion's training reference and against the window before it.

As Databricks Lakehouse Monitoring does, it makes two comparisons and writes two tables:

- comparisons: ``baseline`` (the current window against the reference the training run
  logged: the held-out rows with the champion's predictions) and ``consecutive`` (the current
  window against the previous window of the same length);
- ``drift_profile`` (`PROFILE_SCHEMA`): per window, column and slice, the row and null
  counts, mean, standard deviation, min, quantiles, max and distinct values, for the current
  window (``log_type`` "input") and the reference (``log_type`` "baseline");
- ``drift_metrics`` (`DRIFT_SCHEMA`): per window, column, comparison and slice, every
  statistic, the test that decides and the verdict, and the comparison's dataset verdict.

Windows are ``drift.window`` long, ending at the newest event of the spine's data set. Slices
are ``drift.slices`` in the use case's settings, or by default its declared ``segments``.
A rerun for the same window (and champion version) replaces that window's rows: each table
is written by one MERGE that also deletes the window's rows the run did not produce again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

import pandas as pd
import pyspark.sql.functions as F
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame

from featurehouse.config import Settings
from featurehouse.errors import FeaturehouseError, NoChampionError
from featurehouse.io import Lakehouse
from featurehouse.io.lakehouse import sql_string, sql_timestamp
from featurehouse.monitoring.drift import (
    ColumnDrift,
    DatasetVerdict,
    DriftThresholds,
    compare,
    dataset_verdict,
)
from featurehouse.monitoring.spark_drift import (
    ALL,
    CATEGORICAL,
    NUMERIC,
    Measurements,
    MonitoredColumn,
    measure,
)
from featurehouse.usecase import EVENT_TIMESTAMP, UseCase

log = logging.getLogger(__name__)


BASELINE, PREVIOUS, CURRENT = "baseline", "previous", "current"
WINDOWS = (BASELINE, PREVIOUS, CURRENT)
# (comparison, reference window): each compares the current window with its reference.
COMPARISONS = (("baseline", BASELINE), ("consecutive", PREVIOUS))
WINDOW_COLUMN = "_drift_window"

PROFILE_TABLE = "drift_profile"
DRIFT_TABLE = "drift_metrics"
PROFILE_SCHEMA = (
    "window_start timestamp, window_end timestamp, log_type string, model_name string,"
    " model_version string, column string, kind string, data_type string, slice_key string,"
    " slice_value string, rows bigint, count bigint, nulls bigint, null_share double,"
    " mean double, stddev double, min double, quantiles map<double,double>, max double,"
    " distinct bigint"
)
PROFILE_KEYS = (
    *("window_start", "window_end", "log_type", "model_version"),
    *("column", "slice_key", "slice_value"),
)
DRIFT_SCHEMA = (
    "window_start timestamp, window_end timestamp, comparison string,"
    " reference_start timestamp, reference_end timestamp, model_name string,"
    " model_version string, column string, kind string, data_type string, slice_key string,"
    " slice_value string, reference_rows bigint, current_rows bigint, status string,"
    " test string, drifted boolean, note string, ks_statistic double, ks_error_bound double,"
    " ks_pvalue double, psi double, kl_divergence double, jensenshannon double,"
    " wasserstein double, wasserstein_normalised double, chi2_statistic double,"
    " chi2_pvalue double, total_variation double, l_infinity double,"
    " unseen_categories array<string>, dataset_drifted boolean"
)
DRIFT_KEYS = (
    *("window_start", "window_end", "comparison", "model_version"),
    *("column", "slice_key", "slice_value"),
)


@dataclass(frozen=True)
class DriftReport:
    use_case: str
    window_start: datetime
    window_end: datetime
    previous_start: datetime
    model_version: str
    columns: list[ColumnDrift]
    """Against the training baseline, whole window: one per feature, then the prediction."""
    consecutive: list[ColumnDrift]
    """Against the previous window, whole window."""
    slices: list[ColumnDrift]
    """Both comparisons, per slice value."""
    verdict: DatasetVerdict
    """The baseline comparison's: what `drifted` (and retraining) follows."""
    consecutive_verdict: DatasetVerdict
    current_rows: int

    @property
    def drifted(self) -> bool:
        return self.verdict.drifted

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def summary(self) -> str:
        """E.g. "3 of 40 feature columns drifted (below the 30% threshold): no dataset drift"."""
        return self.verdict.text


def thresholds_from(settings: Settings, use_case: str) -> DriftThresholds:
    d = settings.use_case(use_case).drift
    return DriftThresholds(
        psi=d.psi,
        ks_pvalue=d.ks_pvalue,
        ks_statistic=d.ks_statistic,
        wasserstein=d.wasserstein,
        kl_divergence=d.kl_divergence,
        jensenshannon=d.jensenshannon,
        chi2_pvalue=d.chi2_pvalue,
        total_variation=d.total_variation,
        l_infinity=d.l_infinity,
        drift_share=d.drift_share,
        numeric_test=d.numeric_test,
        categorical_test=d.categorical_test,
    )


def monitored_columns(use_case: UseCase) -> list[MonitoredColumn]:
    """Every model input (strings are categories), then the prediction."""
    columns = [
        MonitoredColumn(f.name, "feature", CATEGORICAL if f.dtype == "string" else NUMERIC)
        for f in use_case.features
    ]
    return [*columns, MonitoredColumn(use_case.task.prediction, "prediction", NUMERIC)]


def slice_columns(settings: Settings, use_case: UseCase) -> list[str]:
    configured = settings.use_case(use_case.name).drift.slices
    slices = list(use_case.segments if configured is None else configured)
    features = {f.name for f in use_case.features}
    unknown = [s for s in slices if s not in features]
    if unknown:
        raise FeaturehouseError(
            f"conf/use_cases/{use_case.name}.yml: drift.slices {unknown} are not features of"
            f" use case {use_case.name}"
        )
    return slices


def current_window(
    lake: Lakehouse, settings: Settings, use_case: UseCase
) -> tuple[datetime, datetime]:
    """(start, end] of the newest drift window of the spine's data set."""
    source = use_case.spine.source
    end = lake.read(source.name).agg(F.max(source.event_time)).collect()[0][0]
    if end is None:
        raise FeaturehouseError(f"{lake.name(source.name)} has no rows: no window to monitor")
    return end - settings.use_case(use_case.name).drift.window, end


def detect_drift(lake: Lakehouse, settings: Settings, use_case: UseCase) -> DriftReport:
    from featurehouse.training.registry import CHAMPION, configure_mlflow, version_with_alias

    configure_mlflow(settings)
    model_name = settings.model_name(use_case.name, use_case.model_name)
    champion = version_with_alias(MlflowClient(), model_name, CHAMPION)
    if champion is None:
        raise NoChampionError(
            f"no '{CHAMPION}' version of model {model_name} to monitor: run the training job first"
        )
    measurements, spans = measure_windows(lake, settings, use_case, champion)
    thresholds = thresholds_from(settings, use_case.name)
    results = {
        name: compare(
            measurements, reference=ref, current=CURRENT, comparison=name, thresholds=thresholds
        )
        for name, ref in COMPARISONS
    }
    verdicts = {name: dataset_verdict(rows, thresholds) for name, rows in results.items()}
    write_drift(lake, champion, spans, results, verdicts)
    write_profiles(lake, champion, spans, measurements)
    whole = {name: [r for r in rows if r.slice_key is None] for name, rows in results.items()}
    report = DriftReport(
        use_case=use_case.name,
        window_start=spans[CURRENT][0],
        window_end=spans[CURRENT][1],
        previous_start=spans[PREVIOUS][0],
        model_version=champion.version,
        columns=whole["baseline"],
        consecutive=whole["consecutive"],
        slices=[r for rows in results.values() for r in rows if r.slice_key is not None],
        verdict=verdicts["baseline"],
        consecutive_verdict=verdicts["consecutive"],
        current_rows=measurements.rows(CURRENT),
    )
    log.info("%s drift, %s .. %s: %s", use_case.name, *spans[CURRENT], report.summary)
    return report


def measure_windows(
    lake: Lakehouse, settings: Settings, use_case: UseCase, champion
) -> tuple[Measurements, dict[str, tuple[datetime, datetime]]]:
    """The baseline, previous and current windows measured over every row, and each
    window's (start, end]."""
    drift = settings.use_case(use_case.name).drift
    start, end = current_window(lake, settings, use_case)
    previous_start = start - drift.window
    columns = monitored_columns(use_case)
    names = [c.name for c in columns]
    rows = window_rows(lake, settings, use_case, champion, previous_start, start)
    windows = lake.stage(rows, "drift_windows")
    reference = reference_rows(lake, use_case, champion.run_id, columns)
    frame = windows.select(WINDOW_COLUMN, *names).unionByName(
        reference.select(F.lit(BASELINE).alias(WINDOW_COLUMN), *names)
    )
    measurements = measure(
        frame,
        window_column=WINDOW_COLUMN,
        windows=WINDOWS,
        references=[BASELINE, PREVIOUS],
        columns=columns,
        slices=slice_columns(settings, use_case),
        grid=drift.grid,
        bins=drift.bins,
    )
    reference_span = reference.agg(F.min(EVENT_TIMESTAMP), F.max(EVENT_TIMESTAMP)).first()
    spans = {
        BASELINE: (reference_span[0], reference_span[1]),
        PREVIOUS: (previous_start, start),
        CURRENT: (start, end),
    }
    return measurements, spans


def window_rows(
    lake: Lakehouse,
    settings: Settings,
    use_case: UseCase,
    champion,
    previous_start: datetime,
    start: datetime,
) -> DataFrame:
    """Every spine row of the previous and current windows, (previous_start, end], with its
    point-in-time features and the champion's prediction, labelled by window."""
    from featurehouse.scoring import with_predictions
    from featurehouse.store.feast_store import feature_store
    from featurehouse.store.training_set import service_features
    from featurehouse.training.labels import spine_rows

    source = use_case.spine.source
    entities = spine_rows(
        lake.read(source.name).where(F.col(source.event_time) > F.lit(previous_start)),
        use_case.spine,
        use_case.entity.keys,
    )
    service = settings.feature_service(use_case.name)
    features = service_features(lake, feature_store(settings), service, use_case, entities)
    scored = with_predictions(features, champion.uri, use_case)
    window = F.when(F.col(EVENT_TIMESTAMP) > F.lit(start), CURRENT).otherwise(PREVIOUS)
    return scored.select(window.alias(WINDOW_COLUMN), EVENT_TIMESTAMP, *_names(use_case))


def reference_rows(
    lake: Lakehouse, use_case: UseCase, run_id: str, columns: Sequence[MonitoredColumn]
) -> DataFrame:
    """The training run's drift reference (held-out rows and the model's predictions on them)
    as a Spark frame, typed like the windows: numbers as doubles, categories as strings."""
    from featurehouse.training.train import load_reference

    frame = load_reference(run_id)
    missing = [c.name for c in columns if c.name not in frame.columns]
    if missing:
        raise FeaturehouseError(
            f"the champion's drift reference (run {run_id}) lacks columns {missing}: retrain"
            " the model so its run logs a reference of the current features"
        )
    typed = pd.DataFrame({EVENT_TIMESTAMP: pd.to_datetime(frame[EVENT_TIMESTAMP])})
    for column in columns:
        values = frame[column.name]
        if column.data_type == NUMERIC:
            typed[column.name] = pd.to_numeric(values, errors="coerce").astype("float64")
        else:
            typed[column.name] = (
                values.astype(object)
                .where(values.notna(), None)
                .map(lambda v: v if v is None else str(v))
            )
    ddl = ", ".join(
        [f"`{EVENT_TIMESTAMP}` timestamp"]
        + [f"`{c.name}` {'double' if c.data_type == NUMERIC else 'string'}" for c in columns]
    )
    return lake.spark.createDataFrame(typed, ddl)


def _names(use_case: UseCase) -> list[str]:
    return [c.name for c in monitored_columns(use_case)]


# --- the two tables ----------------------------------------------------------------------------


def drift_rows(
    champion, spans: dict, results: dict[str, list[ColumnDrift]], verdicts: dict
) -> list[dict]:
    start, end = spans[CURRENT]
    rows = []
    for comparison, reference in COMPARISONS:
        reference_start, reference_end = spans[reference]
        for r in results[comparison]:
            values = asdict(r)
            rows.append(
                {
                    "window_start": start,
                    "window_end": end,
                    "comparison": comparison,
                    "reference_start": reference_start,
                    "reference_end": reference_end,
                    "model_name": champion.name,
                    "model_version": champion.version,
                    **{k: values[k] for k in _DRIFT_RESULT_FIELDS},
                    "unseen_categories": list(r.unseen_categories),
                    "dataset_drifted": verdicts[comparison].drifted,
                }
            )
    return rows


# The fields of a ColumnDrift that are columns of the drift table.
# The fields of a ColumnDrift that are columns of the drift table, as they are.
_DRIFT_RESULT_FIELDS = (
    *("column", "kind", "data_type", "slice_key", "slice_value"),
    *("reference_rows", "current_rows", "status", "test", "drifted", "note"),
    *("ks_statistic", "ks_error_bound", "ks_pvalue", "psi", "kl_divergence", "jensenshannon"),
    *("wasserstein", "wasserstein_normalised", "chi2_statistic", "chi2_pvalue"),
    *("total_variation", "l_infinity"),
)


def profile_rows(champion, spans: dict, measurements: Measurements) -> list[dict]:
    """The current window's profiles (log type "input") and the baseline's ("baseline")."""
    kinds = {c.name: c for c in measurements.columns}
    rows = []
    for window, log_type in ((CURRENT, "input"), (BASELINE, "baseline")):
        start, end = spans[window]
        slice_ids = measurements.slice_ids([window])
        for slice_id in slice_ids:
            if slice_id != ALL and measurements.rows(window, slice_id) == 0:
                continue
            for name, column in kinds.items():
                p = measurements.profile(window, slice_id, name)
                rows.append(
                    {
                        "window_start": start,
                        "window_end": end,
                        "log_type": log_type,
                        "model_name": champion.name,
                        "model_version": champion.version,
                        "column": name,
                        "kind": column.kind,
                        "data_type": column.data_type,
                        "slice_key": slice_id[0],
                        "slice_value": slice_id[1],
                        "rows": p.rows,
                        "count": p.count,
                        "nulls": p.nulls,
                        "null_share": p.nulls / p.rows if p.rows else None,
                        "mean": p.mean,
                        "stddev": p.stddev,
                        "min": p.min,
                        "quantiles": p.quantiles or None,
                        "max": p.max,
                        "distinct": p.distinct,
                    }
                )
    return rows


def write_drift(lake: Lakehouse, champion, spans, results, verdicts) -> None:
    rows = lake.spark.createDataFrame(drift_rows(champion, spans, results, verdicts), DRIFT_SCHEMA)
    rows = rows.withColumn("computed_at", F.current_timestamp())
    scope = _same_window(*spans[CURRENT], champion.version)
    replace_rows(lake, DRIFT_TABLE, rows, DRIFT_KEYS, scope)


def write_profiles(lake: Lakehouse, champion, spans, measurements: Measurements) -> None:
    rows = lake.spark.createDataFrame(profile_rows(champion, spans, measurements), PROFILE_SCHEMA)
    rows = rows.withColumn("computed_at", F.current_timestamp())
    baseline = f"t.log_type = 'baseline' AND t.model_version = {sql_string(champion.version)}"
    current = f"t.log_type = 'input' AND {_same_window(*spans[CURRENT], champion.version)}"
    replace_rows(lake, PROFILE_TABLE, rows, PROFILE_KEYS, f"({current}) OR ({baseline})")


def _same_window(start: datetime, end: datetime, version: str) -> str:
    return (
        f"t.window_start = {sql_timestamp(start)} AND t.window_end = {sql_timestamp(end)}"
        f" AND t.model_version = {sql_string(version)}"
    )


def replace_rows(
    lake: Lakehouse, key: str, rows: DataFrame, keys: Sequence[str], scope: str
) -> None:
    """Make the rows of `scope` (SQL on the target, alias t) exactly `rows`, in one commit:
    MERGE on `keys` updates and inserts, and deletes the scope's other rows. The first
    write creates the table. Columns the table lacks (an older layout) are added."""
    if lake.exists(key):
        table_columns = set(lake.read(key).columns)
        missing = [f for f in rows.schema.fields if f.name not in table_columns]
        if missing:
            added = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in missing)
            lake.spark.sql(f"ALTER TABLE {lake.sql_name(key)} ADD COLUMNS ({added})")
    lake.merge(rows, key, keys, update=True, delete_unmatched=scope)

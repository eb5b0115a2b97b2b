# Databricks notebook source
# MAGIC %md
# MAGIC # Explore the featurehouse feature tables
# MAGIC
# MAGIC A read-only tour of the lakehouse the jobs build: how many rows each table holds,
# MAGIC which features are declared, what they look like for one machine, the signal the
# MAGIC failure model learns, and the latest drift metrics and predictions.
# MAGIC
# MAGIC Nothing here writes a table; every job's logic lives in the `featurehouse` package.
# MAGIC On Databricks pick the environment with the `env` widget; locally run
# MAGIC `python notebooks/explore_features.py` (`$FEATUREHOUSE_ENV`, default `local`).

# COMMAND ----------

import os

import pandas as pd
import pyspark.sql.functions as F

from featurehouse.config import load_settings
from featurehouse.features import ENTITY_KEY, EVENT_TIMESTAMP, FEATURE_TABLES
from featurehouse.io import Lakehouse
from featurehouse.spark import get_spark
from featurehouse.training.labels import LABEL, with_failure_label

try:
    env = dbutils.widgets.get("env")  # noqa: F821  (Databricks)
except NameError:
    env = os.environ.get("FEATUREHOUSE_ENV", "local")
settings = load_settings(env)
spark = get_spark(settings)
lake = Lakehouse(spark, settings)
try:
    display  # noqa: B018,F821 - Databricks provides display()
except NameError:

    def display(df, n=50):
        """Local stand-in for Databricks' display(): print the first rows."""
        print((df.limit(n).toPandas() if hasattr(df, "limit") else df.head(n)).to_string())


# COMMAND ----------

# MAGIC %md
# MAGIC ## Rows per table
# MAGIC Every configured table that exists yet, by its configuration key.

# COMMAND ----------

row_counts = {
    key: lake.read(key).count() for key in type(settings.tables).model_fields if lake.exists(key)
}
display(
    pd.DataFrame({"table": [lake.name(k) for k in row_counts], "rows": list(row_counts.values())})
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Feature declarations
# MAGIC The declarations in `featurehouse.features` are the single source of the Delta
# MAGIC feature tables, the Feast feature views and this list.

# COMMAND ----------

declarations = pd.DataFrame(
    [
        {
            "table": lake.name(table.table_key),
            "feature_view": table.view_name,
            "feature": feature.name,
            "dtype": feature.dtype,
            "description": feature.description,
        }
        for table in FEATURE_TABLES
        for feature in table.features
    ]
)
display(declarations)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Telemetry features: summary statistics

# COMMAND ----------

telemetry_features = lake.read("telemetry_features")
telemetry_summary = telemetry_features.describe().toPandas().set_index("summary")
display(telemetry_summary.T.reset_index(names="column"))

# COMMAND ----------

# MAGIC %md
# MAGIC ## One machine's most recent feature rows
# MAGIC Telemetry and error features of the lowest machine id over its last day.

# COMMAND ----------

machine_id = lake.read("machines").agg(F.min("machine_id")).first()[0]
machine_rows = (
    telemetry_features.where(F.col(ENTITY_KEY) == machine_id)
    .join(lake.read("error_features"), [ENTITY_KEY, EVENT_TIMESTAMP], "left")
    .select(ENTITY_KEY, EVENT_TIMESTAMP, "vibration_mean_24h", "volt_mean_3h", "errors_count_24h")
    .orderBy(F.col(EVENT_TIMESTAMP).desc())
    .limit(24)
)
display(machine_rows)

# COMMAND ----------

# MAGIC %md
# MAGIC ## The signal the model learns
# MAGIC Each feature row gets the training label: 1 when the machine fails within the
# MAGIC label horizon (24 h) after it. Rows in the horizon before a failure should show
# MAGIC higher vibration and more errors than all other rows.

# COMMAND ----------

observed_until = lake.read("telemetry").agg(F.max("timestamp")).first()[0]
labelled = with_failure_label(
    telemetry_features.select(ENTITY_KEY, EVENT_TIMESTAMP),
    lake.read("failures"),
    horizon_hours=settings.training.label_horizon_hours,
    observed_until=observed_until,
)
signal = (
    labelled.join(telemetry_features, [ENTITY_KEY, EVENT_TIMESTAMP])
    .join(lake.read("error_features"), [ENTITY_KEY, EVENT_TIMESTAMP])
    .groupBy(F.col(LABEL).alias("failure_within_24h"))
    .agg(
        F.count("*").alias("rows"),
        F.avg("vibration_mean_24h").alias("mean_vibration_mean_24h"),
        F.avg("errors_count_24h").alias("mean_errors_count_24h"),
    )
    .orderBy("failure_within_24h")
    .toPandas()
)
display(signal)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Delta history of the telemetry feature table
# MAGIC Each feature job run is one Delta commit; older versions stay readable
# MAGIC with `lake.read("telemetry_features", version=...)`.

# COMMAND ----------

history = (
    lake.delta_table("telemetry_features")
    .history()
    .select("version", "timestamp", "operation", "operationMetrics")
)
display(history)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Latest drift metrics
# MAGIC One row per monitored column for the newest window the drift job compared
# MAGIC with the champion model's training reference.

# COMMAND ----------

latest_drift = None
if lake.exists("drift_metrics"):
    drift = lake.read("drift_metrics")
    newest_window = drift.agg(F.max("window_end")).first()[0]
    latest_drift = (
        drift.where(F.col("window_end") == F.lit(newest_window))
        .select("window_end", "model_version", "column", "kind", "psi", "ks_pvalue", "drifted")
        .orderBy(F.col("psi").desc())
        .toPandas()
    )
    display(latest_drift)
else:
    print("no drift metrics yet: run the monitoring job")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Latest predictions
# MAGIC The failure probability of each machine from the newest scoring run, most at risk first.

# COMMAND ----------

latest_predictions = None
if lake.exists("predictions"):
    predictions = lake.read("predictions")
    newest_score = predictions.agg(F.max("scored_at")).first()[0]
    latest_predictions = (
        predictions.where(F.col("scored_at") == F.lit(newest_score))
        .orderBy(F.col("failure_probability").desc())
        .toPandas()
    )
    display(latest_predictions)
else:
    print("no predictions yet: run the scoring job")

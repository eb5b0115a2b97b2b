# Databricks notebook source
# MAGIC %md
# MAGIC # Explore a use case's feature tables
# MAGIC
# MAGIC A read-only tour of the lakehouse the jobs build for one use case: how many rows
# MAGIC each table holds, which features are declared, what they look like for one entity,
# MAGIC the signal the model learns, and the latest drift metrics and predictions.
# MAGIC
# MAGIC Nothing here writes a table; every job's logic lives in the `featurehouse` package.
# MAGIC On Databricks open this notebook from the deployed bundle
# MAGIC (`<bundle root>/files/notebooks/`): the next cell installs the featurehouse wheel built
# MAGIC from the bundle's files (the commit the jobs run), then pick the environment and the
# MAGIC use case with the widgets. Locally run `python notebooks/explore_features.py`
# MAGIC (`$FEATUREHOUSE_ENV`, default `local`, and `$FEATUREHOUSE_USE_CASE`, default
# MAGIC `predictive_maintenance`) in the project's virtualenv.

# COMMAND ----------

# MAGIC %pip install --quiet ..

# COMMAND ----------

# Databricks: make the package just installed importable. Locally there is nothing to restart.
import contextlib

with contextlib.suppress(NameError):
    dbutils.library.restartPython()  # noqa: F821  (Databricks)

# COMMAND ----------

import os

import pandas as pd
import pyspark.sql.functions as F
from pyspark.sql import Window

from featurehouse.config import load_settings
from featurehouse.discovery import load_use_case
from featurehouse.io import Lakehouse
from featurehouse.spark import get_spark
from featurehouse.store.feast_store import feature_store
from featurehouse.store.training_set import service_features
from featurehouse.training.dataset import entity_sources, training_entities
from featurehouse.training.evaluate import model_inputs
from featurehouse.usecase import EVENT_TIMESTAMP, Classification

try:
    # Every widget this notebook reads is defined here, before it is read.
    dbutils.widgets.dropdown("env", "dev", ["dev", "staging", "prod"], "Environment")  # noqa: F821
    dbutils.widgets.text("use_case", "predictive_maintenance", "Use case")  # noqa: F821
    env = dbutils.widgets.get("env")  # noqa: F821
    use_case_name = dbutils.widgets.get("use_case")  # noqa: F821
except NameError:
    env = os.environ.get("FEATUREHOUSE_ENV", "local")
    use_case_name = os.environ.get("FEATUREHOUSE_USE_CASE", "predictive_maintenance")
settings = load_settings(env)
use_case = load_use_case(settings, use_case_name)
spark = get_spark(settings)
lake = Lakehouse(spark, settings, use_case.name)
try:
    display  # noqa: B018,F821 - Databricks provides display()
except NameError:

    def display(df, n=50):
        """Local stand-in for Databricks' display(): print the first rows."""
        print((df.limit(n).toPandas() if hasattr(df, "limit") else df.head(n)).to_string())


# COMMAND ----------

# MAGIC %md
# MAGIC ## Rows per table
# MAGIC Every table of the use case that exists yet: its data sets, feature tables and run records.

# COMMAND ----------

row_counts = {key: lake.read(key).count() for key in lake.table_keys()}
display(
    pd.DataFrame({"table": [lake.name(k) for k in row_counts], "rows": list(row_counts.values())})
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Feature declarations
# MAGIC The use case's declarations are the single source of the Delta feature tables, the
# MAGIC Feast feature views and this list.

# COMMAND ----------

declarations = pd.DataFrame(
    [
        {
            "table": lake.name(table.name),
            "feature_view": table.view_name,
            "feature": feature.name,
            "dtype": feature.dtype,
            "description": feature.description,
        }
        for table in use_case.tables
        for feature in table.features
    ]
)
display(declarations)

# COMMAND ----------

# MAGIC %md
# MAGIC ## The first feature table: summary statistics

# COMMAND ----------

first_table = use_case.tables[0]
first_features = lake.read(first_table.name)
feature_summary = first_features.describe().toPandas().set_index("summary")
display(feature_summary.T.reset_index(names="column"))

# COMMAND ----------

# MAGIC %md
# MAGIC ## One entity's most recent feature rows
# MAGIC The first feature table's newest rows of the entity with the smallest keys.

# COMMAND ----------

keys = list(first_table.keys)
entity = first_features.select(*keys).orderBy(*keys).first().asDict()
entity_rows = (
    first_features.where(F.expr(" AND ".join(f"`{k}` = {entity[k]!r}" for k in keys)))
    .orderBy(F.col(EVENT_TIMESTAMP).desc())
    .limit(24)
)
display(entity_rows)

# COMMAND ----------

# MAGIC %md
# MAGIC ## The signal the model learns
# MAGIC The training rows with their label and their point-in-time features. For a
# MAGIC classifier: each numeric feature's mean by label; for a regressor: each numeric
# MAGIC feature's correlation with the label.

# COMMAND ----------

versions = {name: lake.version(name) for name in entity_sources(use_case)}
labelled = service_features(
    lake,
    feature_store(settings),
    settings.feature_service(use_case.name),
    use_case,
    training_entities(lake, use_case, versions),
)
label = use_case.label.name
numeric = model_inputs(use_case, {}).numeric
if isinstance(use_case.task, Classification):
    signal = (
        labelled.groupBy(label)
        .agg(F.count("*").alias("rows"), *[F.avg(f).alias(f"mean_{f}") for f in numeric])
        .orderBy(label)
        .toPandas()
    )
else:
    correlations = labelled.select(*[F.corr(f, label).alias(f) for f in numeric]).first()
    signal = (
        pd.DataFrame({"feature": list(numeric), "correlation": [correlations[f] for f in numeric]})
        .sort_values("correlation", key=abs, ascending=False)
        .reset_index(drop=True)
    )
display(signal)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Delta history of the first feature table
# MAGIC Each feature job run is one Delta commit; older versions stay readable
# MAGIC with `lake.read(table, version=...)`.

# COMMAND ----------

history = spark.sql(f"DESCRIBE HISTORY {lake.sql_name(first_table.name)}").select(
    "version", "timestamp", "operation", "operationMetrics"
)
display(history)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Latest drift metrics
# MAGIC One row per monitored column for the newest window the drift job compared
# MAGIC with the champion model's training reference (the `baseline` comparison, whole
# MAGIC window; the table also holds the `consecutive` comparison and each slice).

# COMMAND ----------

latest_drift = None
if lake.exists("drift_metrics"):
    drift = lake.read("drift_metrics")
    newest_window = drift.agg(F.max("window_end")).first()[0]
    latest_drift = (
        drift.where(F.col("window_end") == F.lit(newest_window))
        .where("comparison = 'baseline' AND slice_key IS NULL")
        .select(
            *("window_end", "model_version", "column", "kind", "test", "drifted"),
            *("ks_statistic", "psi", "wasserstein_normalised", "jensenshannon"),
        )
        .orderBy(F.col("drifted").desc(), F.col("ks_statistic").desc())
        .toPandas()
    )
    display(latest_drift)
else:
    print("no drift metrics yet: run the monitoring job")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Latest predictions
# MAGIC Each entity's prediction from the newest scoring run, highest first.

# COMMAND ----------

latest_predictions = None
if lake.exists("predictions"):
    predictions = lake.read("predictions")
    newest_first = Window.partitionBy(*use_case.keys).orderBy(F.col("scored_at").desc())
    latest_predictions = (
        predictions.withColumn("_n", F.row_number().over(newest_first))
        .where("_n = 1")
        .drop("_n")
        .orderBy(F.col(use_case.task.prediction).desc())
        .toPandas()
    )
    display(latest_predictions)
else:
    print("no predictions yet: run the scoring job")

# Databricks notebook source
# MAGIC %md
# MAGIC # Retrain gate
# MAGIC
# MAGIC A task of each use case's monitoring workflow, after its drift and performance tasks:
# MAGIC it reads the newest dataset drift verdict (against the training baseline) and the
# MAGIC newest performance windows, decides whether the use case asks for a new model (only
# MAGIC where its settings retrain on drift or on a drop), and publishes the task value
# MAGIC `retrain` ("true" or "false") that the next condition task reads. It is a notebook
# MAGIC because only notebook tasks may set task values; the decision itself is
# MAGIC `featurehouse.monitoring.gate.retrain_decision`. Locally run
# MAGIC `python notebooks/retrain_gate.py` (`$FEATUREHOUSE_ENV`, `$FEATUREHOUSE_USE_CASE`).

# COMMAND ----------

# MAGIC %pip install --quiet ..

# COMMAND ----------

# Databricks: make the package just installed importable. Locally there is nothing to restart.
import contextlib

with contextlib.suppress(NameError):
    dbutils.library.restartPython()  # noqa: F821  (Databricks)

# COMMAND ----------

import os

from featurehouse import jobs
from featurehouse.config import load_settings
from featurehouse.discovery import load_use_case

try:
    # The workflow passes both as base parameters; every widget read is defined first.
    dbutils.widgets.text("env", "dev", "Environment")  # noqa: F821
    dbutils.widgets.text("use_case", "predictive_maintenance", "Use case")  # noqa: F821
    env = dbutils.widgets.get("env")  # noqa: F821
    use_case_name = dbutils.widgets.get("use_case")  # noqa: F821
except NameError:
    env = os.environ.get("FEATUREHOUSE_ENV", "local")
    use_case_name = os.environ.get("FEATUREHOUSE_USE_CASE", "predictive_maintenance")
settings = load_settings(env)
use_case = load_use_case(settings, use_case_name)

# COMMAND ----------

decision = jobs.retrain_gate(settings, use_case)
print(decision.describe())

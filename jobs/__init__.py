"""Databricks workflows of the bundle, generated in Python (see `jobs.workflows`)."""

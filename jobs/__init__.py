"""The Databricks bundle, generated in Python: the jobs (`jobs.workflows`), the Unity Catalog
and MLflow resources they need (`jobs.resources`), and what a target needs before its first
deploy (`jobs.prerequisites`)."""

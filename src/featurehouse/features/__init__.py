"""The feature job: incremental, checked, idempotent Delta feature tables from declarations."""

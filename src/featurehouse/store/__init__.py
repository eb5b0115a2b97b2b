"""Feast glue: definitions derived from the feature declarations, the store, online lookups."""

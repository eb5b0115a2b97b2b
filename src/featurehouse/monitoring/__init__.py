"""Monitoring of served features and predictions: drift between a reference window and now."""

"""Tests against a real Dagster dev instance (webserver and daemon) on loopback."""

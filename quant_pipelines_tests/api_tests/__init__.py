"""Tests of the HTTP API (quant_pipelines.api) against the real MongoDB-wire server."""

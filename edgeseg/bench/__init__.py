"""Measurement: the environment a figure was taken in (latency and memory harness to follow)."""

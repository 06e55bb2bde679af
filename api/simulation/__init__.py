"""Simulation drivers: the storm demo, storm replay against a running service, and load generators."""

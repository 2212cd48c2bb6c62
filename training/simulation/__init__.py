"""The population simulator's parts; the public entry point is `training.simulator`."""

"""Health integrations: linked providers, daily metrics, the Fitbit export importer."""

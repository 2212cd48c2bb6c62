"""Object storage behind one Protocol: a local folder (embedded default) or S3 (production)."""

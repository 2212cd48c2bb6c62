"""The dashboard's aggregates of recommendation impressions, clicks and conversions (written by a pipeline)."""

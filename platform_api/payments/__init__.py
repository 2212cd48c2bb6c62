"""Payments: gateways by region, idempotent creation, verified webhooks, the activation saga."""

"""Threshold webhooks: endpoints, the outbox, detection and delivery."""

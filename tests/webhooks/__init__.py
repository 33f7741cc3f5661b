"""Threshold webhooks end to end, against a real receiver process."""

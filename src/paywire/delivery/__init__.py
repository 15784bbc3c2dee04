"""Outbox delivery targets (signed HTTP callback, SQS, Python callable)."""

"""Alerts people act on: hygiene queues (and, with the stream, the alert policy)."""

"""Offline replay: recorded CRM events through the same core as the stream."""

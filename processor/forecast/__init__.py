"""Forecast integrity: what the warehouse and the manager rollups read."""

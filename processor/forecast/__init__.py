"""Forecast integrity: stage intervals as the warehouse rebuilds them, fiscal
periods, manager buckets and the override ledger.

Pure code (no Kafka, no clock): the stream shell in
``processor.stream.rollups`` feeds it and publishes what it decides.
"""

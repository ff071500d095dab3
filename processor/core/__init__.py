"""The pure core: records in, state transitions and findings out.

Nothing here touches Kafka, Redis, files or the clock; time always arrives as
an argument, so the stream, the offline replay and the tests run the same code.
"""

"""``hygiene demo``: Kafka, Redis, a worker and simulated CRM traffic on this
machine, with the outputs shown live (see :mod:`processor.demo.run`)."""

from processor.demo.run import DemoOptions, DemoResult, run_demo

__all__ = ["DemoOptions", "DemoResult", "run_demo"]

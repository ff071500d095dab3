"""The stream: Faust workers around the pure core.

Ingest reads the CRM input topics in batches with a plain aiokafka consumer
(Faust's per-message machinery costs more than our whole rules engine, see
bench/README.md), normalizes, and routes changes to the internal
``hygiene.changes`` topic, partitioned by opportunity id, one message per
partition per batch. The state agent (a Faust agent with a table) applies each
batch message to the opportunities' states and publishes the outcome. Sweeps
travel through the same topic, so only the owner of a partition ever writes
its table or alerts on its opportunities.
"""

"""Alerts people act on: hygiene queues and the alert policy.

- ``queue``: each owner's hygiene queue (pure);
- ``policy``: what may reach a rep in real time (pure core);
- ``store``: the policy's Redis keys and Lua scripts;
- ``shell``: ``AlertPolicy``, one Redis call per batch, degraded mode;
- ``actions``: ``AlertActions``, snooze / ack / status for the HTTP API;
- ``breaker``, ``connection``, ``metrics``: the shell's parts.
"""

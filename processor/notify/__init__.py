"""The Slack notifier (``hygiene notify slack``): alerts, resolutions and
digests from Kafka to Block Kit messages, routed per team.

Pure parts (rendering, routing, CRM links, decoding, backoff) are separate
from the I/O shell (Slack transports, the Redis record of posted messages,
the Kafka loop) so that what a rep reads is tested without any server.
"""

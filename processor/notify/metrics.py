"""Prometheus metrics of the Slack notifier (``HYGIENE_SLACK_METRICS_PORT``).

``kind`` is alert, resolution or digest; ``rule`` is the alert's rule id
(``digest`` for digests), so a rule whose messages Slack keeps refusing
stands out.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DELIVERED = Counter("hygiene_notify_delivered_total", "Messages Slack accepted",
                    ["kind", "rule"])
FAILED = Counter("hygiene_notify_failed_total",
                 "Messages given up on and sent to the dead-letter topic",
                 ["kind", "rule", "cause"])
RETRIED = Counter("hygiene_notify_retried_total", "Slack requests tried again",
                  ["kind", "rule", "cause"])
SKIPPED = Counter("hygiene_notify_skipped_total",
                  "Records deliberately not posted (digest-only alerts, repeats, resolutions of "
                  "alerts this notifier never posted)", ["kind", "reason"])
DEAD_LETTERS = Counter("hygiene_notify_dead_letters_total",
                       "Records sent to the dead-letter topic", ["reason"])
REDIS_DEGRADED = Gauge("hygiene_notify_redis_degraded",
                       "1 while Redis is unreachable (delivery waits for it)")

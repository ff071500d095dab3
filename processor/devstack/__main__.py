"""``python -m processor.devstack run``: keep Kafka and Redis up for manual work.

The process stays in the foreground and owns both servers, so stopping it
(SIGTERM, SIGINT, or SIGKILL thanks to the parent-death signal) stops them
too; ``scripts/local-services.sh`` runs it in the background.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path
from types import FrameType

from processor.devstack._proc import log
from processor.devstack.kafka import LocalKafka
from processor.devstack.redis import LocalRedis


def _write_env(path: Path, kafka: LocalKafka, redis: LocalRedis) -> None:
    # Written only once both answer, and atomically, so whoever polls for the
    # file may use it the moment it exists.
    partial = path.with_name(path.name + ".partial")
    partial.write_text(
        f"HYGIENE_TEST_KAFKA={kafka.bootstrap_servers}\n"
        f"HYGIENE_TEST_REDIS={redis.url}\n"
        f"HYGIENE_DEVSTACK_PID={os.getpid()}\n"
    )
    partial.replace(path)


def run(env_file: Path) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)

    with LocalKafka() as kafka, LocalRedis() as redis:
        _write_env(env_file, kafka, redis)
        log(f"services up; environment in {env_file}")
        try:
            # A supervision loop, not a guess: wake on a signal or check health.
            while not stop.wait(timeout=2.0):
                if not (kafka.running and redis.running):
                    log("a service died; shutting down")
                    return 1
        finally:
            env_file.unlink(missing_ok=True)
            log("stopping services")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m processor.devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    run_cmd = sub.add_parser("run", help="start Kafka and Redis, stay in the foreground")
    run_cmd.add_argument("--env-file", type=Path, default=Path(".local-services.env"))
    args = parser.parse_args(argv)
    return run(args.env_file.resolve())


if __name__ == "__main__":
    raise SystemExit(main())

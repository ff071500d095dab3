"""``hygiene`` with wall-clock timers around the worker's stages (bench only).

Same command line as ``hygiene`` (``python bench/instrumented_worker.py worker
-l info``). Before the CLI runs it wraps, without changing behaviour:

- ingest: ``Ingest._handle`` (a whole fetched batch), ``detect.decode`` per
  message (as ingest imported it), ``encode_changes``;
- state agent: ``messages.decode`` (pydantic validation of the internal
  batch), ``StateProcessor.handle_changes`` (whole), ``load_state``,
  ``dump_state``, ``Engine.apply``, the ``publish`` it is handed (awaiting
  output acks) and the table writes in ``_finish``;
- Faust: ``ProducerBuffer.wait_until_ebb`` (the agent paused until the
  changelog buffer drains below 100 records).

Totals (seconds, calls) are written as JSON to ``$BENCH_INSTRUMENT_OUT``
every 2 s and at exit. Nested timers overlap (handle_changes contains
load/apply/publish/dump); waits are wall time, not CPU.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import sys
import threading
import time
from collections import defaultdict
from typing import Any

TOTALS: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])


def _add(name: str, seconds: float) -> None:
    entry = TOTALS[name]
    entry[0] += seconds
    entry[1] += 1


def timed(name: str, fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _add(name, time.perf_counter() - start)

    return wrapper


def timed_async(name: str, fn: Any) -> Any:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            _add(name, time.perf_counter() - start)

    return wrapper


def install() -> None:
    from faust.transport.producer import ProducerBuffer

    from processor.core.engine import Engine
    from processor.stream import ingest, messages, state

    ingest.decode = timed("ingest.detect_decode", ingest.decode)  # type: ignore[attr-defined]
    ingest.encode_changes = timed("ingest.encode_changes", ingest.encode_changes)  # type: ignore[attr-defined]
    ingest.Ingest._handle = timed_async("ingest._handle(batch)", ingest.Ingest._handle)  # type: ignore[method-assign]
    messages.decode = timed("agent.messages_decode(pydantic)", messages.decode)
    state.load_state = timed("agent.load_state", state.load_state)
    state.dump_state = timed("agent.dump_state", state.dump_state)
    Engine.apply = timed("agent.engine_apply", Engine.apply)  # type: ignore[method-assign]
    if hasattr(Engine, "next_due"):
        Engine.next_due = timed("agent.engine_next_due", Engine.next_due)  # type: ignore[method-assign]

    original_handle = state.StateProcessor.handle_changes

    async def handle_changes(
        self: Any, batch: Any, partition: int, table: Any, publish: Any
    ) -> None:
        start = time.perf_counter()
        try:
            await original_handle(
                self, batch, partition, table, timed_async("agent.publish(await acks)", publish)
            )
        finally:
            _add("agent.handle_changes(whole)", time.perf_counter() - start)

    state.StateProcessor.handle_changes = handle_changes  # type: ignore[method-assign]

    original_finish = state.StateProcessor._finish

    async def finish(self: Any, out: Any, dirty: Any, *args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        await original_finish(self, out, dirty, *args, **kwargs)
        _add("agent._finish(publish+dump+table writes)", time.perf_counter() - start)
        _add("agent.table_writes(count)", 0.0)
        TOTALS["agent.table_writes(count)"][1] += len(dirty) - 1

    state.StateProcessor._finish = finish  # type: ignore[method-assign]
    ProducerBuffer.wait_until_ebb = timed_async(  # type: ignore[method-assign]
        "faust.wait_until_ebb(changelog buffer)", ProducerBuffer.wait_until_ebb
    )

    if os.environ.get("BENCH_PROBE_SWEEP"):
        original_sweep = state.StateProcessor.handle_sweep

        async def handle_sweep(
            self: Any, tick: Any, partition: int, table: Any, publish: Any
        ) -> None:
            keys = list(table.keys())
            loaded = sum(1 for k in keys[:1000] if table.get(k) is not None)
            print(
                f"[probe] sweep partition={partition} table_keys={len(keys)} "
                f"first1000_loaded={loaded} sample={keys[:2]!r}",
                file=sys.stderr,
                flush=True,
            )
            await original_sweep(self, tick, partition, table, publish)

        state.StateProcessor.handle_sweep = handle_sweep  # type: ignore[method-assign]

    out = os.environ.get("BENCH_INSTRUMENT_OUT")
    if out:

        def dump() -> None:
            snapshot = {
                k: {"seconds": round(v[0], 3), "calls": int(v[1])}
                for k, v in sorted(TOTALS.items())
            }
            tmp = out + ".tmp"
            with open(tmp, "w") as handle:
                json.dump(snapshot, handle, indent=1)
            os.replace(tmp, out)

        def loop() -> None:
            while True:
                time.sleep(2)
                dump()

        threading.Thread(target=loop, daemon=True).start()
        atexit.register(dump)


if __name__ == "__main__":
    install()
    from processor.cli import main

    sys.argv[0] = "hygiene"
    sys.exit(main())

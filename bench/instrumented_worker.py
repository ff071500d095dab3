"""``hygiene`` with wall-clock timers around the worker's stages (bench only).

Same command line as ``hygiene`` (``python bench/instrumented_worker.py worker
-l info``). Before the CLI runs it wraps, without changing behaviour:

- ingest: ``Ingest._handle`` (a whole fetched batch: decode, route, send,
  await acks) and ``Decoder.route_many`` (the native decode and routing);
- the state agent on either processor: ``handle_changes`` (a whole unit),
  the ``publish`` it is handed (awaiting the outputs' acks) and its
  ``persist`` (table writes and changelog sends; the Python processor
  awaits the changelog's acks in it, the native one per round in
  ``confirmed``); on the
  native processor also the core's ``apply_messages`` as awaited (in its
  thread, or inline) and ``_regroup`` (memberships and entries); on the
  Python one ``Engine.apply``;
- the group agents (owner queues, rollups): the handler of one message.

Totals (seconds, calls) are written as JSON to ``$BENCH_INSTRUMENT_OUT``
every 2 s and at exit. Nested timers overlap (a unit contains apply,
regroup, publish and persist); waits are wall time, not CPU, and agents
run concurrently, so totals across agents do not add up to the run.
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
    from processor.alerts.shell import AlertPolicy
    from processor.core.engine import Engine
    from processor.sources.native import Decoder
    from processor.stream import changelog, ingest, native_state, owner_queues, rollups, state

    ingest.Ingest._handle = timed_async("ingest._handle(batch)", ingest.Ingest._handle)  # type: ignore[method-assign]
    Decoder.route_many = timed("ingest.route_many(native)", Decoder.route_many)  # type: ignore[method-assign]
    Engine.apply = timed("agent.engine_apply(python)", Engine.apply)  # type: ignore[method-assign]
    native = native_state.NativeStateProcessor
    native._regroup = timed("agent._regroup(native)", native._regroup)  # type: ignore[method-assign]
    native._applied = timed_async("agent._applied(waiting for the core)", native._applied)  # type: ignore[method-assign]
    native._collect = timed("agent._collect(records, alerts held)", native._collect)  # type: ignore[method-assign]
    AlertPolicy.decide = timed_async("policy.decide(Redis call)", AlertPolicy.decide)  # type: ignore[method-assign]
    native.confirmed = timed_async("agent.confirmed(changelog acks of a round)", native.confirmed)  # type: ignore[method-assign]
    original_init = native.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.offload = _TimedOffload(self.offload)
        self.persist = timed_async("agent.persist(store writes + changelog sends)", self.persist)

    native.__init__ = init  # type: ignore[method-assign]
    for processor in (state.StateProcessor, native):
        original = processor.handle_changes

        def wrap(original: Any) -> Any:
            async def handle_changes(self: Any, batch: Any, partition: int, table: Any,
                                     publish: Any, **kwargs: Any) -> None:
                start = time.perf_counter()
                try:
                    await original(self, batch, partition, table,
                                   timed_async("agent.publish(await acks)", publish), **kwargs)
                finally:
                    _add("agent.handle_changes(unit)", time.perf_counter() - start)

            return handle_changes

        processor.handle_changes = wrap(original)  # type: ignore[method-assign]

    original_run = changelog.run_table_agent

    async def run_table_agent(stream: Any, app: Any, table: Any, handle: Any, **kwargs: Any) -> None:
        name = f"group.{kwargs.get('agent', '?')}.handle"
        await original_run(stream, app, table, timed_async(name, handle), **kwargs)

    for module in (changelog, owner_queues, rollups):
        setattr(module, "run_table_agent", run_table_agent)  # noqa: B010 (re-exported name)

    if os.environ.get("BENCH_PROBE_SWEEP"):
        for processor in (state.StateProcessor, native):
            processor.handle_sweep = probed(processor.handle_sweep)  # type: ignore[method-assign]


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


def probed(original: Any) -> Any:
    """A sweep that first says what the table holds (recovery_bench)."""

    async def handle_sweep(self: Any, tick: Any, partition: int, table: Any, publish: Any,
                           **kwargs: Any) -> None:
        keys = list(table.keys())
        loaded = sum(1 for k in keys[:1000] if table.get(k) is not None)
        print(f"[probe] sweep partition={partition} table_keys={len(keys)} "
              f"first1000_loaded={loaded} sample={keys[:2]!r}", file=sys.stderr, flush=True)
        await original(self, tick, partition, table, publish, **kwargs)

    return handle_sweep


class _TimedOffload:
    """The native processor's offload: each call timed from its start to
    its end (in the thread: including its waits for the GIL)."""

    def __init__(self, offload: Any) -> None:
        self.offload = offload

    def __getattr__(self, name: str) -> Any:
        return getattr(self.offload, name)

    def submit(self, call: Any, *args: Any) -> Any:
        start = time.perf_counter()
        future = self.offload.submit(call, *args)
        name = f"core.{getattr(call, '__name__', call)}(start to end)"
        future.add_done_callback(lambda _: _add(name, time.perf_counter() - start))
        return future


if __name__ == "__main__":
    install()
    from processor.cli import main

    sys.argv[0] = "hygiene"
    sys.exit(main())

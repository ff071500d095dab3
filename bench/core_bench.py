"""Core benchmark: events per second through decode + rules engine, no I/O.

What ``hygiene replay`` runs: the native decoders and engine by default,
``--engine python`` for the Python reference.

Generates simulated CRM traffic in memory first (not timed), then times the
replay runner over it with outputs discarded: the cost of the product's own
Python per event, the part no broker tuning can buy back. Also reports the
serialized state size per opportunity, which is what a table's changelog and
RocksDB store per deal.

    python bench/core_bench.py --opportunities 10000 --days 90 --format mixed
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import orjson
from traffic import add_traffic_arguments, simulated

from processor.core.clock import to_ms
from processor.replay.runner import Replay
from processor.rules import default_rules
from processor.runtime import tune_gc
from schemas.state import state_to_json


def crm_events(raw: bytes) -> int:
    """Events as the CRMs count them: a HubSpot webhook request carries an
    array of events (up to 100), one Kafka message here; a Salesforce CDC
    message or a generic event is one."""
    document = orjson.loads(raw)
    return len(document) if isinstance(document, list) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_traffic_arguments(parser, opportunities=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engine", choices=["native", "python"], default="native",
                        help="the rules engine (hygiene replay --engine)")
    parser.add_argument("--profile", action="store_true", help="cProfile one run")
    parser.add_argument("--default-gc", action="store_true",
                        help="keep CPython's default collector (hygiene replay tunes it)")
    args = parser.parse_args()

    rules = default_rules()
    started = time.perf_counter()
    sim = simulated(args, rules)
    events = sum(crm_events(raw) for raw in sim.events)
    print(f"generated {len(sim.events):,} messages ({events:,} CRM events) for "
          f"{args.opportunities:,} opportunities ({args.format}, {args.days} days) in "
          f"{time.perf_counter() - started:.1f}s")
    as_of = to_ms(sim.as_of)

    if not args.default_gc:
        tune_gc()  # as `hygiene replay` does

    def run() -> tuple[Replay, float, float]:
        replay = Replay(rules, keep=False, received_at=sim.as_of, engine=args.engine)
        gc.collect()
        start = time.process_time()
        for raw in sim.events:
            replay.feed(raw, "bench")
        fed = time.process_time()
        replay.finish(as_of)
        return replay, fed - start, time.process_time() - fed

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        run()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return

    rates, sweeps = [], []
    replay = None
    for _ in range(args.repeat):
        replay, feed_s, sweep_s = run()
        result = replay.result
        rates.append((result.messages / feed_s, result.changes / feed_s, events / feed_s))
        sweeps.append(sweep_s)
        print(f"  run: {events / feed_s:,.0f} events/s, {result.messages / feed_s:,.0f} messages/s, "
              f"{result.changes / feed_s:,.0f} changes/s; final sweep over "
              f"{len(replay.engine):,} opportunities {sweep_s * 1000:.0f} ms")
    assert replay is not None
    states = replay.states
    sizes = sorted(len(s.model_dump_json(exclude_defaults=True)) for s in states.values())
    best = max(rates)
    print(f"best: {best[2]:,.0f} events/s, {best[0]:,.0f} messages/s, {best[1]:,.0f} changes/s "
          f"(median {statistics.median(r[0] for r in rates):,.0f} messages/s)")
    print(f"sweep: {min(sweeps) / len(states) * 1e6:.1f} µs per opportunity")
    stored = sorted(len(state_to_json(s)) for s in states.values())
    print(f"stored form (what the table and its changelog hold): mean "
          f"{statistics.fmean(stored):,.0f}, p95 {stored[int(len(stored) * 0.95)]:,}")
    print(f"state bytes per opportunity: mean {statistics.fmean(sizes):,.0f}, "
          f"p95 {sizes[int(len(sizes) * 0.95)]:,}, max {sizes[-1]:,}")


if __name__ == "__main__":
    main()

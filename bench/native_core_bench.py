"""Native core benchmark: the Python engine against ``hygiene_core`` on the
same changes, engine only (no decoding, no I/O).

Uses bench/core_bench.py's traffic. The changes are decoded with the Python
decoders and encoded as the native core takes them (``orjson.dumps`` of each
change's fields) before any timing, so both sides are timed from decoded
changes to published records: the Python side's records are pydantic models,
the native side's are JSON bytes (which the stream would otherwise still
have to serialize). Process CPU time; run it pinned (``taskset -c 0``).

    taskset -c 0 python bench/native_core_bench.py --opportunities 10000
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

from traffic import add_traffic_arguments, simulated

from processor.core.clock import to_ms
from processor.core.engine import Engine
from processor.rules import default_rules
from processor.rules.export import native_rules
from processor.runtime import tune_gc
from processor.sources.detect import decode
from processor.sources.mapping import FieldMappings
from schemas import OpportunityState


def main() -> None:
    from processor import hygiene_core

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_traffic_arguments(parser, opportunities=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256, help="changes per apply_batch call")
    parser.add_argument("--skip-python", action="store_true")
    args = parser.parse_args()

    rules = default_rules()
    sim = simulated(args, rules)
    mappings = FieldMappings.with_overrides(dict(rules.field_mapping.items()))
    changes = [c for raw in sim.events for c in decode(raw, mappings).changes]
    encoded = [c.to_json() for c in changes]
    batches = [encoded[i:i + args.batch] for i in range(0, len(encoded), args.batch)]
    last = max(to_ms(c.occurred_at) for c in changes)
    messages = len(sim.events)
    print(f"{messages:,} messages, {len(changes):,} changes for {args.opportunities:,} "
          f"opportunities ({args.format}, {args.days} days); batches of {args.batch}")
    tune_gc()  # as `hygiene replay` does

    def python_run() -> tuple[float, float, int]:
        engine = Engine(rules)
        states: dict[str, OpportunityState] = {}
        records = 0
        gc.collect()
        start = time.process_time()
        for change in changes:
            state, outcome = engine.apply(states.get(change.opportunity_id), change)
            states[change.opportunity_id] = state
            records += len(outcome.alerts) + len(outcome.history) + len(outcome.commands)
        applied = time.process_time()
        for state in states.values():
            outcome = engine.sweep(state, last)
            records += len(outcome.alerts) + len(outcome.history) + len(outcome.commands)
        return applied - start, time.process_time() - applied, records

    def native_run() -> tuple[float, float, int]:
        core = hygiene_core.Core(native_rules(rules))
        records = 0
        gc.collect()
        start = time.process_time()
        for batch in batches:
            alerts, history, commands = core.apply_batch(batch)
            records += len(alerts) + len(history) + len(commands)
        applied = time.process_time()
        alerts, history, commands = core.sweep_all(last)
        records += len(alerts) + len(history) + len(commands)
        return applied - start, time.process_time() - applied, records

    results = {}
    runs = [("native", native_run)] + ([] if args.skip_python else [("python", python_run)])
    for name, run in runs:
        times = []
        for _ in range(args.repeat):
            apply_s, sweep_s, records = run()
            times.append((apply_s, sweep_s))
            print(f"  {name}: {len(changes) / apply_s:,.0f} changes/s, "
                  f"{messages / apply_s:,.0f} messages/s, {records:,} records; "
                  f"final sweep {sweep_s * 1000:.0f} ms")
        best = min(t[0] for t in times)
        results[name] = best
        print(f"{name} best: {len(changes) / best:,.0f} changes/s, {messages / best:,.0f} "
              f"messages/s ({best * 1e6 / len(changes):.2f} µs per change; median "
              f"{len(changes) / statistics.median(t[0] for t in times):,.0f} changes/s); "
              f"sweep {min(t[1] for t in times) * 1000:.0f} ms")
    if "python" in results:
        print(f"native / python: {results['python'] / results['native']:.1f}x")


if __name__ == "__main__":
    main()

"""Decode benchmark: the Python decoders vs the native ones (``hygiene_decode``).

Generates the same simulated traffic as ``core_bench.py`` in memory first
(not timed), then times, in process CPU time, what turns raw message bytes
into something the engine can consume:

- Python: ``processor.sources.detect.decode`` per message (it builds the
  ``OpportunityChange`` objects itself);
- native: ``Decoder.decode_many`` over batches of messages, giving each
  change as the JSON of one ``OpportunityChange``;
- the cost of turning those bytes into records: ``model_validate_json`` per
  change, one ``TypeAdapter(list[...]).validate_json`` per batch, and
  ``orjson.loads`` + ``base.build_change`` (no validation: the native decoder
  already established every type, which is ``build_change``'s contract).

    taskset -c 0 python bench/native_decode_bench.py --opportunities 10000 --days 90
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from datetime import datetime

import orjson
from pydantic import TypeAdapter
from traffic import add_traffic_arguments, simulated

from processor import hygiene_decode
from processor.rules import default_rules
from processor.runtime import tune_gc
from processor.sources.base import build_change
from processor.sources.detect import decode
from processor.sources.export import native_mappings
from processor.sources.mapping import FieldMappings
from schemas.change import OpportunityChange


def timed(run: Callable[[], int]) -> tuple[float, int]:
    gc.collect()
    start = time.process_time()
    count = run()
    return time.process_time() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_traffic_arguments(parser, opportunities=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256, help="messages per decode_many call")
    args = parser.parse_args()

    rules = default_rules()
    started = time.perf_counter()
    sim = simulated(args, rules)
    events = sim.events
    batches = [events[i:i + args.batch] for i in range(0, len(events), args.batch)]
    print(f"generated {len(events):,} messages for {args.opportunities:,} opportunities "
          f"({args.format}, {args.days} days) in {time.perf_counter() - started:.1f}s")

    mappings = FieldMappings.with_overrides(dict(rules.field_mapping.items()))  # as the runner
    decoder = hygiene_decode.Decoder(native_mappings(mappings))
    validate = OpportunityChange.model_validate_json
    validate_list = TypeAdapter(list[OpportunityChange]).validate_json
    native_results = [r for batch in batches for r in decoder.decode_many(batch)]
    change_bytes = [c for changes, _, _ in native_results for c in changes]
    per_batch = [b"[" + b",".join(c for changes, _, _ in decoder.decode_many(batch)
                                  for c in changes) + b"]" for batch in batches]
    print(f"{len(change_bytes):,} changes; native decode_many batches of {args.batch}")
    tune_gc()  # as `hygiene replay` does

    def python_decode() -> int:
        kept = [decode(raw, mappings) for raw in events]  # kept alive, as a consumer would
        return sum(len(r.changes) for r in kept)

    def native_decode() -> int:
        kept = [decoder.decode_many(batch) for batch in batches]
        return sum(len(r[0]) for results in kept for r in results)

    def native_validate_each() -> int:
        return len([validate(c) for c in change_bytes])

    def native_validate_batch() -> int:
        return sum(len(validate_list(b)) for b in per_batch)

    def native_build() -> int:
        loads, parse_time = orjson.loads, datetime.fromisoformat
        kept = []
        for c in change_bytes:
            fields = loads(c)
            fields["occurred_at"] = parse_time(fields["occurred_at"])
            kept.append(build_change(**fields))
        return len(kept)

    measures = {
        "python decode": python_decode,
        "native decode_many": native_decode,
        "model_validate_json per change": native_validate_each,
        "validate_json per batch (list)": native_validate_batch,
        "orjson.loads + build_change": native_build,
    }
    seconds: dict[str, list[float]] = {name: [] for name in measures}
    for run in range(args.repeat):
        for name, measure in measures.items():
            elapsed, count = timed(measure)
            seconds[name].append(elapsed)
            print(f"  run {run + 1} {name:32} {elapsed * 1e6 / len(events):6.2f} µs/message "
                  f"({count:,} changes, {elapsed:.2f}s)")
    n = len(events)
    print(f"best of {args.repeat} (median in brackets), per message of {n:,}:")
    for name, values in seconds.items():
        best, median = min(values), statistics.median(values)
        print(f"  {name:32} {best * 1e6 / n:6.2f} µs ({median * 1e6 / n:6.2f})  "
              f"{n / best:>12,.0f} messages/s")
    python = min(seconds["python decode"])
    native = min(seconds["native decode_many"])
    each = native + min(seconds["model_validate_json per change"])
    batch = native + min(seconds["validate_json per batch (list)"])
    print(f"  {'native + model_validate_json':32} {each * 1e6 / n:6.2f} µs  {n / each:>12,.0f} "
          f"messages/s ({python / each:.1f}x Python)")
    print(f"  {'native + batch validate_json':32} {batch * 1e6 / n:6.2f} µs  {n / batch:>12,.0f} "
          f"messages/s ({python / batch:.1f}x Python)")
    built = native + min(seconds["orjson.loads + build_change"])
    print(f"  {'native + loads + build_change':32} {built * 1e6 / n:6.2f} µs  {n / built:>12,.0f} "
          f"messages/s ({python / built:.1f}x Python)")
    print(f"  native decode alone: {python / native:.1f}x Python")


if __name__ == "__main__":
    main()

"""What each stage of the worker's per-event work costs, measured apart.

The end-to-end benchmark gives one ratio; this one says where the floor
under it is. On the same simulated traffic as ``e2e_bench.py`` (mixed
formats, generated in memory first), one core, CPU time, each stage timed
over the whole data set (best of ``--repeat``):

1. ``orjson.loads`` of every input message: the plain loop does this too;
2. decode: the rest of ``processor.sources.detect.decode`` (vendor envelope
   validation with pydantic, field mapping and coercion, building the
   changes);
3. internal hop: encoding the changes for ``hygiene.changes`` and validating
   them back with pydantic from bytes, as the state agent does;
4. engine: ``Engine.apply`` of every change in order (no I/O);
5. state write: serializing a state (``dump_state``) once per change, which
   is what the worker does when a batch touches each opportunity once.

The sum of 2-5 is Python work per input message that the plain
consume-and-produce loop never does; with the loop's own per-message cost
(``--raw-us``, from an ``e2e_bench.py`` run: 1e6 / its events per second
times its CPU share) it bounds the worker's ratio to the loop from above,
before any Kafka or Faust cost of the worker's own (internal topic,
changelog, outputs).

    python bench/stages_bench.py --opportunities 9000 --raw-us 17
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import orjson
from traffic import add_traffic_arguments, simulated

from processor.core.engine import Engine
from processor.rules import default_rules
from processor.runtime import tune_gc
from processor.sources.detect import decode
from processor.sources.mapping import FieldMappings
from processor.stream import messages
from processor.stream.state import dump_state
from schemas import OpportunityChange, OpportunityState

T = TypeVar("T")

CHUNK = 1250
"""Changes per internal message, about what ingest sends per partition per
fetch of 5,000 messages in the e2e benchmark."""


def each(fn: Callable[[T], object], items: Sequence[T]) -> Callable[[], None]:
    """Runs ``fn`` over ``items`` and drops every result at once, as the
    worker does once a batch is sent. Keeping them all (a list comprehension)
    measured 15-40% slower per stage here: hundreds of MiB of results fault
    in fresh pages, which this machine's VM makes expensive, and which the
    worker, reusing its heap batch after batch, mostly does not pay."""

    def run() -> None:
        for item in items:
            fn(item)

    return run


def best_cpu(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_traffic_arguments(parser, opportunities=9000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--raw-us", type=float, default=0.0,
                        help="the plain loop's CPU per message from an e2e run (0: omit)")
    args = parser.parse_args()

    rules = default_rules()
    sim = simulated(args, rules)
    raws = sim.events
    mappings = FieldMappings.with_overrides(dict(rules.field_mapping.items()))
    changes: list[OpportunityChange] = [c for raw in raws for c in decode(raw, mappings).changes]
    chunks = [changes[i:i + CHUNK] for i in range(0, len(changes), CHUNK)]
    encoded = [messages.encode_changes(chunk) for chunk in chunks]
    engine = Engine(rules)

    def apply_all() -> dict[str, OpportunityState]:
        states: dict[str, OpportunityState] = {}
        for change in changes:
            states[change.opportunity_id] = engine.apply(states.get(change.opportunity_id),
                                                         change)[0]
        return states

    final = apply_all()
    # One state per change, as the opportunity stood after it (cycled over
    # the final states: what is timed is serializing states of this size).
    written = [final[c.opportunity_id] for c in changes]
    tune_gc()
    n, k = len(raws), len(changes)
    per_message = {
        "1 orjson.loads (the plain loop does this too)":
            best_cpu(each(orjson.loads, raws), args.repeat) / n,
    }
    full_decode = best_cpu(each(lambda r: decode(r, mappings), raws), args.repeat) / n
    per_message["2 decode: vendor validation + normalize"] = (
        full_decode - per_message["1 orjson.loads (the plain loop does this too)"])
    per_message["3 internal hop: encode + pydantic validate"] = best_cpu(
        each(lambda c: messages.decode(messages.encode_changes(c)), chunks), args.repeat) / n
    per_message["4 engine: Engine.apply"] = best_cpu(apply_all, args.repeat) / n
    per_message["5 state write: dump_state per change"] = best_cpu(
        each(dump_state, written), args.repeat) / n
    del encoded

    print(f"{n:,} messages, {k:,} changes ({k / n:.2f} per message), "
          f"{args.opportunities:,} opportunities, {args.format}")
    for name, seconds in per_message.items():
        print(f"  {name:<48} {seconds * 1e6:7.1f} µs per message")
    extra = sum(v for name, v in per_message.items() if not name.startswith("1 ")) * 1e6
    print(f"  {'worker-only Python work (2-5)':<48} {extra:7.1f} µs per message")
    if args.raw_us:
        bound = args.raw_us / (args.raw_us + extra)
        print(f"  plain loop {args.raw_us:.1f} µs per message: the worker's ratio is at most "
              f"{bound:.0%} before any Kafka or Faust cost of its own")


if __name__ == "__main__":
    main()

"""The whole per-message path in native code: ``hygiene_decode.decode_many``
then ``hygiene_core.apply_batch``, on core_bench's traffic, one core.

This is what the replay and the state agent will cost once the native core
is wired in (native/core/STATUS.md): no pydantic record is built between
the two. Outputs stay JSON bytes, counted, not written.

    taskset -c 0 python bench/native_path_bench.py --opportunities 10000
"""

from __future__ import annotations

import argparse
import gc
import time

from traffic import add_traffic_arguments, simulated

from processor import hygiene_core, hygiene_decode
from processor.core.clock import to_ms
from processor.rules import default_rules
from processor.rules.export import native_rules
from processor.runtime import tune_gc
from processor.sources.export import native_mappings
from processor.sources.mapping import FieldMappings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_traffic_arguments(parser, opportunities=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256, help="messages per native call")
    args = parser.parse_args()
    rules = default_rules()
    sim = simulated(args, rules)
    events = sim.events
    mappings = FieldMappings.with_overrides(dict(rules.field_mapping.items()))
    tune_gc()
    for _ in range(args.repeat):
        decoder = hygiene_decode.Decoder(native_mappings(mappings))
        core = hygiene_core.Core(native_rules(rules))
        gc.collect()
        start = time.process_time()
        changes = outputs = 0
        for i in range(0, len(events), args.batch):
            batch = [c for found, _, _ in decoder.decode_many(events[i:i + args.batch])
                     for c in found]
            changes += len(batch)
            outputs += sum(map(len, core.apply_batch(batch)))
        seconds = time.process_time() - start
        outputs += sum(map(len, core.sweep_all(to_ms(sim.as_of))))
        print(f"  run: {len(events) / seconds:,.0f} messages/s, {changes / seconds:,.0f} "
              f"changes/s ({seconds / len(events) * 1e6:.1f} µs per message; "
              f"{outputs:,} records out)", flush=True)


if __name__ == "__main__":
    main()

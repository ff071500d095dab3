"""Summarize a ``py-spy record --format raw --idle`` profile (collapsed stacks).

Prints: the share of samples that are idle (the event loop waiting in
select), a breakdown of busy samples by category (each sample goes to the
most specific category found anywhere in its stack, see CATEGORIES), the top
functions by own time (leaf frame) and by cumulative share (function anywhere
in the stack, counted once per sample).

    python bench/pyspy_summary.py bench/results/worker-profile-XXXX.txt
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# (category, predicate on (function, file)), most specific first.
CATEGORIES: list[tuple[str, str, str]] = [
    # name, file substring, function substring ('' = any)
    (
        "internal batch: pydantic validate_json (messages.decode)",
        "processor/stream/messages.py",
        "decode",
    ),
    ("state load: OpportunityState.model_validate_json", "processor/stream/state.py", "load_state"),
    ("state dump: model_dump_json", "processor/stream/state.py", "dump_state"),
    ("table write + changelog send (faust tables/stores)", "faust/tables/", ""),
    ("table write + changelog send (faust tables/stores)", "faust/stores/", ""),
    ("engine (processor/core + rules)", "processor/core/", ""),
    ("engine (processor/core + rules)", "processor/rules/", ""),
    ("ingest decode (orjson + vendor normalize)", "processor/sources/", ""),
    ("ingest encode_changes (orjson)", "processor/stream/messages.py", "encode_changes"),
    ("output records: model_dump_json of alerts/history", "processor/stream/state.py", "_json"),
    ("prometheus metrics", "prometheus_client/", ""),
    ("producer (aiokafka + faust producer)", "aiokafka/producer/", ""),
    ("producer (aiokafka + faust producer)", "faust/transport/producer", ""),
    ("producer (aiokafka + faust producer)", "faust/transport/drivers/aiokafka.py", "send"),
    ("consumer/fetcher (aiokafka)", "aiokafka/consumer/", ""),
    ("consumer/fetcher (aiokafka)", "aiokafka/record/", ""),
    ("kafka client/conn (aiokafka)", "aiokafka/", ""),
    ("faust stream/agent/consumer machinery", "faust/", ""),
    ("faust stream/agent/consumer machinery", "mode/", ""),
    ("web (aiohttp: /metrics polling)", "aiohttp/", ""),
    ("processor/stream other (state.py, ingest.py, app.py)", "processor/stream/", ""),
    ("asyncio event loop", "asyncio/", ""),
]
IDLE_LEAVES = (
    "select (selectors.py",
    "poll (selectors.py",
    "EpollSelector.select",
    "select (",
    "_run_once (asyncio/base_events.py",
)


def parse(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    samples = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        frames = []
        for raw in stack.split(";"):
            match = FRAME.match(raw)
            if match:
                frames.append((match["func"], match["file"]))
            else:
                frames.append((raw, ""))
        samples.append((frames, int(count)))
    return samples


def is_idle(frames: list[tuple[str, str]]) -> bool:
    func, file = frames[-1]
    return (func in ("select", "poll") and "selectors.py" in file) or func == "EpollSelector.select"


def categorize(frames: list[tuple[str, str]]) -> str:
    for name, file_part, func_part in CATEGORIES:
        for func, file in frames:
            if file_part in file and func_part in func:
                return name
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    samples = parse(args.profile)
    # With `py-spy record --threads` the root frame names the thread.
    threads: Counter[str] = Counter()
    threads_busy: Counter[str] = Counter()
    stripped = []
    for frames, count in samples:
        thread = "all"
        if frames and frames[0][0].startswith(("thread", "process")):
            thread = frames[0][0] + (f" ({frames[0][1]})" if frames[0][1] else "")
            frames = frames[1:] or [("?", "")]
        threads[thread] += count
        if not is_idle(frames):
            threads_busy[thread] += count
        stripped.append((frames, count))
    samples = stripped
    total = sum(c for _, c in samples)
    idle = sum(c for f, c in samples if is_idle(f))
    busy = total - idle
    print(
        f"{total} samples, idle (event loop in select) {idle / total:.1%}, busy {busy / total:.1%}"
    )
    for thread, count in threads.most_common():
        print(f"  {thread}: {count} samples, busy {threads_busy[thread] / count:.1%}")

    by_category: Counter[str] = Counter()
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    for frames, count in samples:
        if is_idle(frames):
            continue
        by_category[categorize(frames)] += count
        func, file = frames[-1]
        own[f"{func} ({file})"] += count
        for name in {f"{fn} ({fl})" for fn, fl in frames}:
            cumulative[name] += count

    print("\nbusy samples by category (share of busy / of all samples):")
    for name, count in by_category.most_common():
        print(f"  {count / busy:6.1%} {count / total:6.1%}  {name}")
    print(f"\ntop {args.top} by own time (share of busy):")
    for name, count in own.most_common(args.top):
        print(f"  {count / busy:6.1%}  {name}")
    print(f"\ntop {args.top * 2} by cumulative share (of busy):")
    for name, count in cumulative.most_common(args.top * 2):
        print(f"  {count / busy:6.1%}  {name}")


if __name__ == "__main__":
    main()

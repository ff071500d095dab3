"""The ``hygiene`` command line.

Commands are thin: they parse options, build the pieces from ``processor`` and
print. Errors a user can fix (a bad rules file, a missing input) are printed
as one clear message with a non-zero exit, never as a traceback.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from processor.core.clock import to_ms
from processor.replay.engines import EngineName
from processor.replay.runner import Replay, ReplayResult
from processor.replay.sinks import OUTPUT_FILES, JsonLinesSink
from processor.rules.config import RULE_IDS, RulesError, RuleSet, load_rules
from processor.settings import Settings

if TYPE_CHECKING:
    from processor.simulate import Format

console = Console(stderr=True, soft_wrap=True)  # never break paths or ids across lines


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 date or time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _load_rules(path: Path | None) -> RuleSet:
    try:
        return load_rules(path or Settings().rules_file)
    except RulesError as exc:
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise SystemExit(2) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="revops-hygiene")
def main() -> None:
    """revops-hygiene: keep CRM pipeline data trustworthy."""


# ---- rules -------------------------------------------------------------------
@main.group()
def rules() -> None:
    """Work with rules files."""


@rules.command("check")
@click.argument("path", type=click.Path(path_type=Path))
def rules_check(path: Path) -> None:
    """Validate a rules file and summarize what it enforces."""
    ruleset = _load_rules(path)
    console.print(f"[green]ok[/green] {path}: rule-set version {ruleset.version}, "
                  f"dates in {ruleset.timezone}", markup=True)
    for pipeline in ruleset.pipelines:
        stages = " -> ".join(s.name for s in pipeline.stages)
        marker = " (default)" if pipeline is ruleset.default_pipeline else ""
        console.print(f"  pipeline {pipeline.id}{marker}: {stages}", highlight=False)
        enabled = [r for r in RULE_IDS if pipeline.enabled(r)]
        console.print(f"    {len(enabled)} of {len(RULE_IDS)} rules enabled", highlight=False)


# ---- replay ------------------------------------------------------------------
@main.command()
@click.argument("inputs", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--rules", "rules_path", type=click.Path(path_type=Path), help="Rules YAML file.")
@click.option("--as-of", help="Sweep time-driven rules at this time (default: last event).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("replay-out"),
              show_default=True, help="Directory for the JSON-lines outputs.")
@click.option("--report", "report_path", type=click.Path(path_type=Path),
              help="HTML audit report path (default: OUT/audit-report.html).")
@click.option("--no-report", is_flag=True, help="Skip the HTML report.")
@click.option("--quiet", is_flag=True, help="No progress bar or summary.")
@click.option("--export", "exports", multiple=True,
              type=click.Path(exists=True, path_type=Path),
              help="A bulk export in JSON lines (one opportunity a row; repeatable). "
                   "CSV inputs are always read as exports.")
@click.option("--engine", type=click.Choice(["native", "python"]), default="native",
              show_default=True,
              help="The rules engine: native (Rust), or the Python reference it is tested "
                   "against (about eight times slower; same outputs).")
def replay(
    inputs: tuple[Path, ...],
    rules_path: Path | None,
    as_of: str | None,
    out_dir: Path,
    report_path: Path | None,
    no_report: bool,
    quiet: bool,
    exports: tuple[Path, ...],
    engine: EngineName,
) -> None:
    """Replay recorded CRM events (JSON lines in any supported format, CSV
    bulk exports, JSON-lines exports given with --export) through the rules
    offline."""
    if not inputs and not exports:
        raise click.UsageError("give at least one input file (or --export FILE)")
    from processor.runtime import tune_gc

    tune_gc()
    ruleset = _load_rules(rules_path)
    as_of_time = _parse_time(as_of)
    result = run_replay(
        ruleset, inputs, out_dir, as_of_ms=to_ms(as_of_time) if as_of_time else None, quiet=quiet,
        exports=exports, engine=engine,
    )
    if not no_report:
        from processor.report.html import render_report

        report_path = report_path or out_dir / "audit-report.html"
        report_path.write_text(
            render_report(result, generated_at=datetime.now(UTC)), encoding="utf-8"
        )
    if not quiet:
        _print_summary(result, out_dir, None if no_report else report_path)


def run_replay(
    ruleset: RuleSet,
    inputs: tuple[Path, ...] | list[Path],
    out_dir: Path,
    *,
    as_of_ms: int | None,
    quiet: bool,
    exports: tuple[Path, ...] | list[Path] = (),
    engine: EngineName = "native",
) -> ReplayResult:
    """Exports are read after the event files, as a later resync would be."""
    runner = Replay(ruleset, sink=JsonLinesSink(out_dir), received_at=datetime.now(UTC),
                    engine=engine)
    files = [(path, False) for path in inputs] + [(path, True) for path in exports]
    total = sum(p.stat().st_size for p, _ in files)
    with Progress(
        TextColumn("[bold]replay[/bold] {task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=True,
    ) as progress:
        task = progress.add_task("", total=total)
        for path, export in files:
            progress.update(task, description=path.name)
            runner.feed_file(path, on_progress=lambda n: progress.advance(task, n),
                             export=export)
    return runner.finish(as_of_ms)


def _print_summary(result: ReplayResult, out_dir: Path, report: Path | None) -> None:
    raised = Counter(a.rule_id for a in result.alerts if a.kind == "alert")
    open_now = Counter(rule for s in result.states.values() for rule in s.open_alerts)
    table = Table(title="Alerts by rule", title_justify="left")
    table.add_column("rule")
    table.add_column("raised", justify="right")
    table.add_column("open at as-of", justify="right")
    for rule in sorted(raised, key=lambda r: -raised[r]):
        table.add_row(rule, str(raised[rule]), str(open_now.get(rule, 0)))
    console.print(table)
    as_of = datetime.fromtimestamp(result.as_of_ms / 1000, tz=UTC)
    resolutions = sum(1 for a in result.alerts if a.kind == "resolution")
    counts = [
        _plural(result.messages, "message"),
        _plural(result.changes, "change"),
        _plural(len(result.states), "opportunity", "opportunities"),
        _plural(sum(raised.values()), "alert"),
        _plural(resolutions, "resolution"),
        _plural(len({h.record_id for h in result.history}), "stage-history record"),
        _plural(len(result.commands), "close-out recommendation"),
        _plural(len(result.dead_letters), "dead letter"),
    ]
    console.print(f"as of {as_of:%Y-%m-%d %H:%M} UTC: " + ", ".join(counts), highlight=False,
                  soft_wrap=True)
    console.print(f"outputs: {out_dir}/{{{','.join(OUTPUT_FILES.values())}}}", highlight=False,
                  soft_wrap=True)
    if report:
        console.print(f"report:  {report}", highlight=False, soft_wrap=True)


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


# ---- simulate ----------------------------------------------------------------
@main.command()
@click.option("--opportunities", "-n", default=500, show_default=True, type=click.IntRange(1))
@click.option("--days", "-d", default=90, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--format", "fmt", default="mixed", show_default=True,
              type=click.Choice(["salesforce", "hubspot", "generic", "mixed"]))
@click.option("--start", help="First day of the simulated window (default: DAYS before today).")
@click.option("--out", "out_path", type=click.Path(path_type=Path),
              help="JSON-lines file to write.")
@click.option("--to-broker", is_flag=True,
              help="Produce into the first input topic (HYGIENE_KAFKA_BOOTSTRAP) instead.")
@click.option("--rules", "rules_path", type=click.Path(path_type=Path), help="Rules YAML file.")
def simulate(
    opportunities: int,
    days: int,
    seed: int,
    fmt: str,
    start: str | None,
    out_path: Path | None,
    to_broker: bool,
    rules_path: Path | None,
) -> None:
    """Generate realistic CRM change traffic with planted hygiene problems."""
    from processor.simulate import as_of_for, iter_events

    if (out_path is None) == (not to_broker):
        raise click.UsageError("give exactly one of --out FILE or --to-broker")
    ruleset = _load_rules(rules_path)
    first = _parse_time(start) or (
        datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        - timedelta(days=days)
    )
    truth: dict[str, set[str]] = {}
    deliveries = iter_events(opportunities=opportunities, days=days, seed=seed,
                             fmt=_format(fmt), start=first, rules=ruleset, truth=truth)
    if to_broker:
        import asyncio

        from processor.stream.produce import produce

        settings = Settings()
        topic = settings.topics.inputs[0]
        messages = ((topic, d.key.encode(), d.payload) for d in deliveries)
        count = asyncio.run(produce(settings, messages, console))
        console.print(f"produced {count} messages for {opportunities} opportunities to "
                      f"{topic} at {settings.kafka_bootstrap}", highlight=False)
        return
    assert out_path is not None
    count = 0
    with out_path.open("wb") as handle, Progress(
        TextColumn("[bold]simulate[/bold]"), BarColumn(), TextColumn("{task.completed} events"),
        console=console, transient=True,
    ) as progress:
        task = progress.add_task("", total=None)
        for delivery in deliveries:
            handle.write(delivery.payload + b"\n")
            count += 1
            if count % 1000 == 0:
                progress.update(task, completed=count)
    flagged = sum(1 for rules_ in truth.values() if rules_)
    console.print(
        f"wrote {count} messages for {opportunities} opportunities ({flagged} with planted "
        f"problems) to {out_path}; as of {as_of_for(first, days):%Y-%m-%d}",
        highlight=False,
    )


# ---- publish -----------------------------------------------------------------
@main.command()
@click.argument("inputs", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--export", "exports", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A bulk export in JSON lines (one opportunity a row; repeatable). "
                   "CSV inputs are always read as exports.")
@click.option("--export-id", help="The export's id (default: the file's name); one export only.")
@click.option("--exported-at", help="When the exports were taken, ISO-8601 "
                                    "(default: when each file was written).")
@click.option("--topic", help="Input topic to publish to (default: the first of "
                              "HYGIENE_TOPIC_INPUTS).")
def publish(
    inputs: tuple[Path, ...],
    exports: tuple[Path, ...],
    export_id: str | None,
    exported_at: str | None,
    topic: str | None,
) -> None:
    """Publish recorded CRM events and bulk exports to the stream's input
    topic (HYGIENE_KAFKA_BOOTSTRAP), so that workers process them as live
    traffic. Everything goes, in the order replay reads it, to one partition
    (keyed by the first file's name): the stream then raises the same alerts
    on the way as the replay of the same files, not only the same end state.
    Rows the file itself cannot give (broken CSV) go to the dead-letter
    topic."""
    import asyncio

    from processor.sources import recorded
    from processor.stream.produce import produce
    from schemas import DeadLetter

    files = [(path, False) for path in inputs] + [(path, True) for path in exports]
    if not files:
        raise click.UsageError("give at least one input file (or --export FILE)")
    export_files = [path for path, flagged in files if recorded.is_export(path, flagged)]
    if export_id is not None and len(export_files) != 1:
        raise click.UsageError("--export-id names one export; give exactly one export file")
    taken_at = _parse_time(exported_at)
    settings = Settings()
    target = topic or settings.topics.inputs[0]
    dead_letter = settings.topics.dead_letter
    now = datetime.now(UTC)
    key = files[0][0].name.encode()
    counts: Counter[str] = Counter()

    def outgoing() -> Iterator[tuple[str, bytes | None, bytes]]:
        for path, flagged in files:
            export = recorded.is_export(path, flagged)
            for line, item in recorded.messages(path, export=flagged, export_id=export_id,
                                                exported_at=taken_at):
                if isinstance(item, bytes):
                    counts["rows" if export else "events"] += 1
                    yield target, key, item
                else:
                    counts["dead"] += 1
                    letter = DeadLetter.of(item.reason, item.error, source=str(path),
                                           original=item.raw, received_at=now, offset=line)
                    yield dead_letter, None, letter.model_dump_json().encode()

    asyncio.run(produce(settings, outgoing(), console))
    parts = [_plural(counts["events"], "event")] if counts["events"] or not export_files else []
    if export_files:
        parts.append(f"{_plural(counts['rows'], 'export row')} from "
                     f"{_plural(len(export_files), 'export')}")
    console.print(f"published {' and '.join(parts)} to {target} at {settings.kafka_bootstrap}",
                  highlight=False)
    if counts["dead"]:
        console.print(f"[yellow]{_plural(counts['dead'], 'unreadable row')} sent to "
                      f"{dead_letter}[/yellow]", highlight=False)


def _format(fmt: str) -> Format:
    if fmt not in ("salesforce", "hubspot", "generic", "mixed"):
        raise click.BadParameter(f"unknown format {fmt!r}")
    return fmt  # type: ignore[return-value]


# ---- stream -----------------------------------------------------------------
@main.command()
@click.option("--loglevel", "-l", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def worker(loglevel: str) -> None:
    """Run a stream worker (configuration from HYGIENE_* environment variables)."""
    import faust

    from processor.runtime import tune_gc
    from processor.stream.app import create_worker

    instance = create_worker()
    tune_gc()  # after start-up's allocations, which it freezes
    # Faust's default "warn" level installs a DEBUG handler that costs 20-34%
    # of throughput (bench/README.md): run at info unless asked otherwise.
    faust.Worker(instance.app, loglevel=loglevel).execute_from_commandline()


@main.group()
def topics() -> None:
    """Manage the Kafka topics."""


@topics.command("create")
def topics_create() -> None:
    """Create every topic (idempotent): partitions, replication, compaction."""
    import asyncio

    from processor.stream.topics import create_topics

    settings = Settings()
    for spec, created in asyncio.run(create_topics(settings)):
        state = "created" if created else "exists "
        policy = "compact" if spec.compact else "delete "
        console.print(f"{state} {spec.name:<40} {spec.partitions:>3} partitions  {policy}  "
                      f"{spec.purpose}", highlight=False)


# ---- notify ------------------------------------------------------------------
@main.group()
def notify() -> None:
    """Deliver alerts, resolutions and digests to people."""


@notify.command("slack")
@click.option("--routes", "routes_file", type=click.Path(exists=True, path_type=Path),
              help="Routing YAML (default: HYGIENE_SLACK_ROUTES_FILE; none: one route).")
@click.option("--loglevel", "-l", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def notify_slack(routes_file: Path | None, loglevel: str) -> None:
    """Post alerts, resolutions and weekly digests to Slack (incoming webhooks
    HYGIENE_SLACK_WEBHOOK_<ROUTE>, or the Web API with HYGIENE_SLACK_BOT_TOKEN)."""
    from processor.notify.run import run_slack_notifier

    raise SystemExit(run_slack_notifier(routes_file, loglevel, console))


# ---- demo --------------------------------------------------------------------
@main.command()
@click.option("--opportunities", "-n", default=300, show_default=True, type=click.IntRange(1))
@click.option("--days", "-d", default=90, show_default=True, type=click.IntRange(1),
              help="Length of the simulated quarter.")
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--format", "fmt", default="mixed", show_default=True,
              type=click.Choice(["salesforce", "hubspot", "generic", "mixed"]))
@click.option("--rate", default=250.0, show_default=True, type=click.FloatRange(0),
              help="CRM messages per second (0: as fast as the broker takes them).")
@click.option("--rules", "rules_path", type=click.Path(path_type=Path), help="Rules YAML file.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path),
              default=Path("hygiene-demo"), show_default=True,
              help="Directory for outputs, events, report, worker log.")
@click.option("--once", is_flag=True,
              help="Exit once the traffic is processed (default: keep showing until Ctrl-C).")
@click.option("--duration", type=click.FloatRange(0, min_open=True), metavar="SECONDS",
              help="Stop this many seconds after the traffic starts.")
@click.option("--sweep-interval", default=10.0, show_default=True,
              type=click.FloatRange(0.5), metavar="SECONDS",
              help="Time-driven rules are re-evaluated this often once the traffic is in.")
@click.option("--plain", is_flag=True, help="Plain lines instead of the live view "
              "(the default when stdout is not a terminal).")
def demo(
    opportunities: int,
    days: int,
    seed: int,
    fmt: str,
    rate: float,
    rules_path: Path | None,
    out_dir: Path,
    once: bool,
    duration: float | None,
    sweep_interval: float,
    plain: bool,
) -> None:
    """Run the whole pipeline locally and watch it: a real Kafka broker and
    Redis on loopback (no Docker), a worker, and a simulated quarter of CRM
    traffic; alerts and stage transitions show up live. Ctrl-C stops all of it."""
    from processor.demo import DemoOptions, run_demo

    rules_file = rules_path or Settings().rules_file
    options = DemoOptions(
        opportunities=opportunities, days=days, seed=seed, fmt=_format(fmt), rate=rate,
        out_dir=out_dir, once=once, duration=duration, sweep_interval=sweep_interval,
        plain=True if plain else None,
    )
    raise SystemExit(run_demo(options, _load_rules(rules_file), rules_file))


if __name__ == "__main__":
    sys.exit(main())

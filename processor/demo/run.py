"""``hygiene demo``: the whole pipeline on this machine, live.

Starts Redis and a real Kafka broker on loopback, creates the topics, runs a
worker (``hygiene worker`` in a subprocess), produces a simulated quarter of
CRM traffic at a readable pace, and shows what comes out of the output topics
as it happens. The same traffic also goes through the offline replay
(:class:`processor.replay.runner.Replay`), which the HTML audit report is
built from, so the report describes exactly what was streamed.

The demo is the clock for time-driven rules. It replays three months in
under a minute, so the wall clock stays months ahead of most deals until
their stories are through; a worker sweeping on its own timer would flag
every deal still mid-story as stale and recommend closing it. So the
worker's timer is set out of the way and the demo sends the sweep ticks
(the same internal message the timer sends), first once the worker has
processed all the traffic, then every ``sweep_interval`` seconds.

Stopping: Ctrl-C, SIGTERM and SIGHUP end the live part; a ``finally`` stops
the worker, Redis and Kafka (each in its own process group) whatever
happened, with further signals ignored until that is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import IO, Any

from aiokafka import (  # type: ignore[import-untyped, unused-ignore]
    AIOKafkaConsumer,
    AIOKafkaProducer,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped, unused-ignore]
from rich.console import Console

from processor.core import fields
from processor.demo.stack import PIDS_FILE, Stack
from processor.demo.view import DemoState, LiveView, OutputKind, PlainView, View
from processor.devstack.kafka import DEFAULT_KAFKA_VERSION, kafka_libs_dir
from processor.replay.runner import Replay, ReplayResult
from processor.replay.sinks import OUTPUT_FILES, NullSink
from processor.rules.config import RuleSet
from processor.settings import Settings
from processor.simulate import Delivery, Format, as_of_for, iter_events
from processor.stream.kafka import aiokafka_options
from processor.stream.messages import encode_sweep
from schemas import OpportunityState

EVENTS_FILE = "crm-events.jsonl"
REPORT_FILE = "audit-report.html"
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class DemoOptions:
    opportunities: int = 300
    days: int = 90
    seed: int = 7
    fmt: Format = "mixed"
    rate: float = 250.0
    """CRM messages per second; 0 sends as fast as the broker takes them."""
    out_dir: Path = Path("hygiene-demo")
    once: bool = False
    """Exit once the traffic is processed and swept (else wait for Ctrl-C)."""
    duration: float | None = None
    """Stop this many seconds after the traffic starts, done or not."""
    sweep_interval: float = 10.0
    partitions: int = 4
    plain: bool | None = None
    """Plain lines instead of the live layout; None: plain unless a terminal."""
    ready_timeout: float = 120.0


@dataclass
class DemoResult:
    completed: bool = False
    interrupted: bool = False
    error: str | None = None
    swept_at_ms: int | None = None
    stopped: list[str] = field(default_factory=list)
    left_running: list[str] = field(default_factory=list)
    report: ReplayResult | None = None


def run_demo(
    options: DemoOptions, rules: RuleSet, rules_file: Path, console: Console | None = None
) -> int:
    """Runs the demo; returns the process exit code (0 also after Ctrl-C)."""
    out = console or Console(soft_wrap=True)
    plain = options.plain if options.plain is not None else not out.is_terminal
    out_dir = options.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / PIDS_FILE).unlink(missing_ok=True)

    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=options.days
    )
    deliveries = list(iter_events(opportunities=options.opportunities, days=options.days,
                                  seed=options.seed, fmt=options.fmt, start=start, rules=rules))
    out.print(f"simulated {options.opportunities} opportunities over {options.days} days "
              f"({options.fmt} formats): {len(deliveries):,} CRM messages, sent at "
              f"{_rate(options.rate)}", highlight=False)
    state = DemoState(total_messages=len(deliveries), window_start=start,
                      window_end=as_of_for(start, options.days))
    events_path = out_dir / EVENTS_FILE
    replay = Replay(rules, sink=NullSink(), received_at=datetime.now(UTC))
    replay.result.inputs.append(str(events_path))
    state.names = lambda opportunity_id: _name(replay.state(opportunity_id))
    stack = Stack(out_dir)
    result = DemoResult()

    with _on_signals(_raise_interrupt):
        try:
            _start(stack, out, state, options, rules_file, plain)
            assert stack.settings is not None
            pipeline = Pipeline(stack, stack.settings, options, deliveries, replay, state,
                                events_path, result)
            view: View = PlainView(out, state) if plain else LiveView(out, state)
            asyncio.run(pipeline.run(view))
        except KeyboardInterrupt:
            result.interrupted = True
        except (RuntimeError, TimeoutError, OSError) as err:
            result.error = str(err)
        finally:
            # Nothing in here may raise before stop() has run: the terminal
            # may be gone (SIGHUP), so even printing is allowed to fail.
            with _on_signals(signal.SIG_IGN):
                if stack.pids:
                    _say(out, "stopping the worker, Redis and Kafka ...")
                result.stopped = stack.stop()
                result.left_running = _still_running(stack.pids)
                try:
                    result.report = _write_report(replay, result, out_dir / REPORT_FILE)
                except Exception as err:  # the outputs are on disk; say so and go on
                    result.error = result.error or f"the audit report failed: {err!r}"
    with contextlib.suppress(OSError):
        _print_summary(out, options, state, result, events_path)
    if result.error is not None or result.left_running:
        return 1
    return 0


# ---- start-up -------------------------------------------------------------------
def _start(
    stack: Stack, out: Console, state: DemoState, options: DemoOptions, rules_file: Path,
    plain: bool,
) -> None:
    def step(message: str) -> contextlib.AbstractContextManager[Any]:
        if plain:
            out.print(f"{message} ...", highlight=False)
            return contextlib.nullcontext()
        return out.status(message)

    with step("starting Redis"):
        stack.start_redis()
    if stack.redis is not None:
        out.print(f"Redis ready on {stack.redis.url} (pid {stack.pids.get('redis')}); the "
                  "worker does not use it yet (alert policy is issue 4)", highlight=False)
    else:
        out.print(f"Redis skipped ({stack.redis_skipped}); the worker does not use it yet",
                  highlight=False)

    libs = kafka_libs_dir(DEFAULT_KAFKA_VERSION)
    if not any(libs.glob("kafka_2.13-*.jar")):
        out.print(f"first run: fetching Apache Kafka {DEFAULT_KAFKA_VERSION} (about 50 MB of "
                  f"jars) from Maven Central into {libs.parent}; later runs start in seconds",
                  highlight=False)
    started = time.monotonic()
    with step("starting Kafka"):
        stack.start_kafka()
    assert stack.kafka is not None
    out.print(f"Kafka ready on {stack.kafka.bootstrap_servers} (pid {stack.pids.get('kafka')}) "
              f"in {time.monotonic() - started:.1f}s", highlight=False)

    settings = stack.worker_settings(app_id=f"hygiene-demo-{secrets.token_hex(3)}",
                                     partitions=options.partitions, rules_file=rules_file)
    with step("creating topics"):
        from processor.stream.topics import create_topics

        created = asyncio.run(create_topics(settings))
    out.print(f"created {sum(1 for _, new in created if new)} topics with "
              f"{settings.partitions} partitions", highlight=False)

    log_path = stack.start_worker()
    with step(f"starting the worker (log: {log_path})"):
        waited = stack.wait_worker_ready(options.ready_timeout)
    out.print(f"worker ready (pid {stack.pids.get('worker')}, app id {settings.app_id}) in "
              f"{waited:.1f}s; log: {log_path}", highlight=False)
    redis = f"Redis {stack.redis.url}" if stack.redis else "Redis skipped"
    state.endpoints = (
        f"Kafka {settings.kafka_bootstrap} (pid {stack.pids.get('kafka')}) | {redis} | "
        f"worker pid {stack.pids.get('worker')} :{settings.web_port} | out {options.out_dir}/"
    )


# ---- the live part --------------------------------------------------------------
class Pipeline:
    """Produce, consume, sweep and draw, in one event loop."""

    def __init__(
        self,
        stack: Stack,
        settings: Settings,
        options: DemoOptions,
        deliveries: list[Delivery],
        replay: Replay,
        state: DemoState,
        events_path: Path,
        result: DemoResult,
    ) -> None:
        self.stack = stack
        self.settings = settings
        self.topics = settings.topics
        self.options = options
        self.deliveries = deliveries
        self.replay = replay
        self.state = state
        self.events_path = events_path
        self.result = result
        self.outputs: dict[str, OutputKind] = {
            self.topics.alerts: "alerts",
            self.topics.stage_history: "history",
            self.topics.commands: "commands",
            self.topics.dead_letter: "dead_letters",
        }
        self._producer: Any = None
        self._consumer: Any = None
        self._admin: Any = None

    async def run(self, view: View) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, stop.set)
        options = aiokafka_options(self.settings)
        self._producer = AIOKafkaProducer(acks="all", linger_ms=5, **options)
        self._consumer = AIOKafkaConsumer(
            *self.outputs, group_id=None, auto_offset_reset="earliest", **options
        )
        self._admin = AIOKafkaAdminClient(**options)
        files: dict[str, IO[bytes]] = {
            kind: (self.options.out_dir / OUTPUT_FILES[kind]).open("wb") for kind in OUTPUT_FILES
        }
        tasks: list[asyncio.Task[Any]] = []
        try:
            await self._producer.start()
            await self._consumer.start()
            await self._admin.start()
            self.state.phase = "streaming"
            with view:
                control = asyncio.create_task(self._control(view))
                stopped = asyncio.create_task(stop.wait())
                tasks = [
                    control,
                    stopped,
                    asyncio.create_task(self._consume(view, files)),
                    asyncio.create_task(self._refresh(view)),
                ]
                done, _ = await asyncio.wait(
                    tasks,
                    timeout=self.options.duration,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                self.state.phase = "stopping"
                if stopped in done:
                    self.result.interrupted = True
                for task in done:
                    if task is not stopped and not task.cancelled():
                        task.result()  # an error in any part ends the demo with it
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for handle in files.values():
                handle.close()
            for client, close in ((self._producer, "stop"), (self._consumer, "stop"),
                                  (self._admin, "close")):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(getattr(client, close)(), timeout=10)
            for sig in _STOP_SIGNALS:
                loop.remove_signal_handler(sig)

    async def _control(self, view: View) -> None:
        state = self.state
        state.phase = "streaming"
        began = state.started_at = time.monotonic()
        await self._produce()
        sent = time.monotonic()
        state.phase = "catching up"
        await self._until_caught_up()
        caught_up = time.monotonic()
        state.phase = "sweeping"
        await self._sweep()
        await self._until_caught_up()
        state.phase = "done"
        self.result.completed = True
        hint = "" if self.options.once else (
            f"; sweeping every {self.options.sweep_interval:g}s, Ctrl-C to stop"
        )
        view.note(f"traffic processed: sent in {sent - began:.1f}s, worker caught up "
                  f"{caught_up - sent:.1f}s later, swept in {time.monotonic() - caught_up:.1f}s"
                  f"{hint}")
        if self.options.once:
            return
        while True:
            await asyncio.sleep(self.options.sweep_interval)
            await self._sweep()

    async def _produce(self) -> None:
        producer, state, replay = self._producer, self.state, self.replay
        topic = self.topics.inputs[0]
        source = str(self.events_path)
        rate = self.options.rate
        loop = asyncio.get_running_loop()
        began = loop.time()
        pending: list[Any] = []
        with self.events_path.open("wb") as events:
            for index, delivery in enumerate(self.deliveries):
                if rate > 0:
                    ahead = began + index / rate - loop.time()
                    if ahead > 0.02:
                        await asyncio.gather(*pending)
                        pending.clear()
                        await asyncio.sleep(ahead)
                pending.append(await producer.send(topic, delivery.payload,
                                                   key=delivery.key.encode()))
                events.write(delivery.payload + b"\n")
                replay.feed(delivery.payload, source, index + 1)
                state.produced += 1
                state.simulated_at = delivery.at
                if len(pending) >= 1000:
                    await asyncio.gather(*pending)
                    pending.clear()
            await asyncio.gather(*pending)

    async def _sweep(self) -> None:
        """One tick to every partition of the internal topic, as the worker's
        own timer does (processor.stream.app.Worker.request_sweeps)."""
        now_ms = int(time.time() * 1000)
        sends = [await self._producer.send(self.topics.changes, encode_sweep(now_ms), partition=p)
                 for p in range(self.settings.partitions)]
        await asyncio.gather(*sends)
        self.result.swept_at_ms = now_ms
        self.state.sweeps += 1

    async def _until_caught_up(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not await self._caught_up():
            self._check_worker()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the worker did not catch up within {timeout:.0f}s; see "
                                   f"{self.options.out_dir / 'worker.log'}")
            await asyncio.sleep(0.25)

    async def _caught_up(self) -> bool:
        """The ingest and the state agent have committed everything on their
        topics, and this consumer has read every output up to its end."""
        settings, topics = self.settings, self.topics
        groups = [(f"{settings.app_id}-ingest", topics.inputs), (settings.app_id, [topics.changes])]
        for group, names in groups:
            partitions = [TopicPartition(name, p) for name in names
                          for p in range(settings.partitions)]
            ends = await self._consumer.end_offsets(partitions)
            committed = await self._admin.list_consumer_group_offsets(group)
            for tp, end in ends.items():
                meta = committed.get(tp)
                if end > (meta.offset if meta is not None and meta.offset >= 0 else 0):
                    return False
        assigned = list(self._consumer.assignment())
        if len(assigned) < len(self.outputs) * settings.partitions:
            return False
        ends = await self._consumer.end_offsets(assigned)
        for tp, end in ends.items():
            if await self._consumer.position(tp) < end:
                return False
        return True

    async def _consume(self, view: View, files: dict[str, IO[bytes]]) -> None:
        consumer, state, outputs = self._consumer, self.state, self.outputs
        while True:
            fetched = await consumer.getmany(timeout_ms=200, max_records=2000)
            for tp, records in fetched.items():
                kind = outputs[tp.topic]
                handle = files[kind]
                for record in records:
                    handle.write(record.value + b"\n")
                    view.on_output(state.record(kind, record.value))
            for handle in files.values():
                handle.flush()

    async def _refresh(self, view: View) -> None:
        while True:
            self._check_worker()
            view.refresh()
            await asyncio.sleep(0.25)

    def _check_worker(self) -> None:
        worker = self.stack.worker
        if worker is not None and worker.poll() is not None:
            raise RuntimeError(f"the worker exited with code {worker.returncode}; see "
                               f"{self.options.out_dir / 'worker.log'}")


# ---- the end ----------------------------------------------------------------------
def _write_report(replay: Replay, result: DemoResult, path: Path) -> ReplayResult | None:
    """The audit report for what was produced: swept when the stream was swept
    (after all the traffic), else at the last event produced."""
    if replay.result.messages == 0:
        return None
    from processor.report.html import render_report

    finished = replay.finish(result.swept_at_ms if result.completed else None)
    path.write_text(render_report(finished, generated_at=datetime.now(UTC)), encoding="utf-8")
    return finished


def _print_summary(
    out: Console, options: DemoOptions, state: DemoState, result: DemoResult, events: Path
) -> None:
    def line(label: str, text: str) -> None:
        out.print(f"{label:<9}{text}", highlight=False, soft_wrap=True)

    if result.error:
        out.print(f"[red]error:[/red] {result.error}", highlight=False, soft_wrap=True)
    elif not result.completed:
        why = "by a signal" if result.interrupted else f"after {options.duration:g}s (--duration)"
        line("stopped", f"{why}, before the worker had processed and swept all the traffic "
                        f"({state.produced:,} of {state.total_messages:,} CRM messages sent)")
    if result.stopped:
        left = (f"[red]STILL RUNNING: {', '.join(result.left_running)}[/red]"
                if result.left_running else "nothing left running")
        out.print(f"{'stopped':<9}{', '.join(result.stopped)}; {left}", highlight=False,
                  soft_wrap=True)
    if state.produced == 0:
        return
    line("stream", f"{_n(state.produced, 'CRM message')} -> {_n(state.alerts, 'alert')} "
                   f"({state.resolutions:,} resolved), "
                   f"{_n(state.history, 'stage-history record')}, "
                   f"{_n(state.commands, 'close-out recommendation')}, "
                   f"{_n(state.dead_letters, 'dead letter')}")
    if result.report is not None:
        report = result.report
        as_of = datetime.fromtimestamp(report.as_of_ms / 1000, tz=UTC)
        open_now = sum(len(s.open_alerts) for s in report.states.values())
        records = len({h.record_id for h in report.history})
        line("replay", f"same traffic offline, as of {as_of:%Y-%m-%d %H:%M} UTC: "
                       f"{_n(report.alerts_raised, 'alert')} ({open_now:,} open), "
                       f"{_n(records, 'stage-history record')}, "
                       f"{_n(len(report.commands), 'close-out recommendation')}")
    out_dir = options.out_dir
    line("outputs", f"{out_dir}/{{{','.join(OUTPUT_FILES.values())}}}")
    line("events", f"{events} (hygiene replay {events})")
    if result.report is not None:
        line("report", str(out_dir / REPORT_FILE))
    line("worker", f"log {out_dir / 'worker.log'}, pids {out_dir / PIDS_FILE}")


# ---- signals and processes ------------------------------------------------------
def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _on_signals(handler: Callable[[int, FrameType | None], Any] | signal.Handlers) -> Iterator[
    None
]:
    """SIGTERM and SIGHUP behave like Ctrl-C while the demo starts services
    (the event loop installs its own handlers for the live part)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}
    for sig in _STOP_SIGNALS:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, previous in saved.items():
            if previous is not None:
                signal.signal(sig, previous)


def _still_running(pids: dict[str, int]) -> list[str]:
    left = []
    for name, pid in pids.items():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass
        left.append(f"{name} (pid {pid})")
    return left


def _name(state: OpportunityState | None) -> str | None:
    name = state.fields.get(fields.NAME) if state is not None else None
    return name if isinstance(name, str) and name else None


def _say(out: Console, message: str) -> None:
    with contextlib.suppress(OSError):
        out.print(message, highlight=False)


def _n(count: int, singular: str) -> str:
    return f"{count:,} {singular}{'' if count == 1 else 's'}"


def _rate(rate: float) -> str:
    return "full speed" if rate <= 0 else f"{rate:g} messages/s"

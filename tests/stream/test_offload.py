"""The offload thread: calls in order, off the loop, named for the OS."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from processor.settings import Settings
from processor.stream.offload import Offload, hand_over_sooner


def test_calls_run_in_one_thread_in_order() -> None:
    seen: list[tuple[int, int]] = []

    def call(n: int) -> int:
        seen.append((n, threading.get_ident()))
        return n * 2

    async def scenario() -> list[int]:
        offload = Offload("hygiene-test")
        results = list(await asyncio.gather(*(offload.submit(call, n) for n in range(3))))
        await offload.idle()
        assert not offload.busy
        return results

    assert asyncio.run(scenario()) == [0, 2, 4]
    assert [n for n, _ in seen] == [0, 1, 2]
    assert len({ident for _, ident in seen}) == 1
    assert seen[0][1] != threading.get_ident()


def test_inline_runs_on_the_callers_thread_and_keeps_errors() -> None:
    def fails() -> None:
        raise ValueError("bad")

    async def scenario() -> None:
        offload = Offload("hygiene-test", threaded=False)
        assert await offload.submit(threading.get_ident) == threading.get_ident()
        with pytest.raises(ValueError, match="bad"):
            await offload.submit(fails)

    asyncio.run(scenario())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc names are Linux's")
def test_the_thread_has_its_name_at_the_os() -> None:
    def os_name() -> str:
        tid = threading.get_native_id()
        return Path(f"/proc/self/task/{tid}/comm").read_text().strip()

    async def scenario() -> str:
        return await Offload("hygiene-core").submit(os_name)

    assert asyncio.run(scenario()) == "hygiene-core"


def test_the_switch_interval_is_set_in_milliseconds() -> None:
    before = sys.getswitchinterval()
    try:
        hand_over_sooner(1.0)
        assert sys.getswitchinterval() == pytest.approx(0.001)
    finally:
        sys.setswitchinterval(before)


@pytest.mark.parametrize("bad", ["0", "-1", "500"])
def test_a_switch_interval_out_of_range_is_refused_by_name(
    bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYGIENE_GIL_SWITCH_MS", bad)
    with pytest.raises(ValidationError, match="gil_switch_ms"):
        Settings()


@pytest.mark.parametrize("threads", [True, False])
def test_the_worker_sets_it_only_with_native_threads(threads: bool, tmp_path: Path) -> None:
    from processor.stream.app import Worker

    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        Worker(Settings(native_threads=threads, gil_switch_ms=2, data_dir=tmp_path))
        assert sys.getswitchinterval() == pytest.approx(0.002 if threads else 0.005)
    finally:
        sys.setswitchinterval(before)

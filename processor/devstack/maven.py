"""Jars from Maven Central into a cache outside the repository, once.

The local Kafka broker, the Kafka Connect worker and the connector plugins it
loads all come from Maven Central as plain jars. Each set is described by a
throw-away POM and copied with the dependency plugin into its own versioned
folder; the download, the locking between concurrent first runs and the
"complete" marker are the same for all of them, so they live here.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from processor.devstack._proc import log, tail
from processor.devstack.apt import which_or_install

__all__ = ["DEPENDENCY_PLUGIN", "cache_root", "fetch_jars", "jars_ready"]

DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
_MARKER = ".complete"


def cache_root() -> Path:
    """Keep the jars out of the repository and shared between clones."""
    override = os.environ.get("HYGIENE_KAFKA_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "revops-hygiene"


def jars_ready(dest: Path) -> bool:
    return (dest / _MARKER).is_file()


def fetch_jars(
    pom: str,
    dest: Path,
    *,
    what: str,
    expect: str,
    extra_args: Sequence[str] = (),
) -> Path:
    """Copy the runtime dependencies of ``pom`` into ``dest``; later runs only check the marker.

    A lock file serialises concurrent first runs (two pytest sessions, or
    pytest and the demo script) so they do not both download into the cache.
    The jars land in a staging folder that is renamed into place with its
    marker, so an interrupted download is never mistaken for a complete one.
    ``expect`` is a glob that must match in the result: Maven can exit 0
    having copied nothing useful when a POM is wrong.
    """
    if jars_ready(dest):
        return dest
    mvn = which_or_install("mvn", "maven")  # nothing installed by hand
    if mvn is None:
        raise RuntimeError(f"Maven (mvn) is needed once to fetch {what}; install maven")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with (dest.parent / f".{dest.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if jars_ready(dest):
            return dest
        started = time.monotonic()
        log(f"fetching {what} from Maven Central into {dest} (first run only)")
        with tempfile.TemporaryDirectory(prefix="hygiene-mvn-") as work:
            workdir = Path(work)
            (workdir / "pom.xml").write_text(pom)
            staging = dest.parent / f"{dest.name}.partial-{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            output = workdir / "mvn.log"
            with output.open("wb") as out:
                proc = subprocess.Popen(
                    [
                        mvn,
                        "-q",
                        "-B",
                        "-f",
                        str(workdir / "pom.xml"),
                        f"{DEPENDENCY_PLUGIN}:copy-dependencies",
                        "-DincludeScope=runtime",
                        f"-DoutputDirectory={staging}",
                        *extra_args,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
                while True:
                    try:
                        code = proc.wait(timeout=15)
                        break
                    except subprocess.TimeoutExpired:
                        log(f"  still downloading ... {time.monotonic() - started:.0f}s")
            if code != 0 or not any(staging.glob(expect)):
                shutil.rmtree(staging, ignore_errors=True)
                raise RuntimeError(f"mvn could not resolve {what} (exit {code}):\n{tail(output)}")
            jars = sorted(p.name for p in staging.glob("*.jar"))
            (staging / _MARKER).write_text("\n".join(jars) + "\n")
            shutil.rmtree(dest, ignore_errors=True)
            staging.rename(dest)
        log(f"fetched {len(jars)} jars in {time.monotonic() - started:.1f}s")
    return dest

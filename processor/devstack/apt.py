"""Debian packages installed on demand, since fresh CI machines lack some servers.

Only done as root (the case on these machines) and at most once per package
and process; anywhere else the caller's clear error beats a surprise sudo
prompt.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading

from processor.devstack._proc import log

__all__ = ["apt_install", "which_or_install"]

_lock = threading.Lock()
_tried: set[str] = set()


def apt_install(package: str) -> None:
    """Install ``package`` with apt-get if this process may and has not tried yet.

    Returns quietly when it cannot install; the caller looks for its binary
    again and explains what is missing.
    """
    with _lock:
        if package in _tried or not shutil.which("apt-get") or os.geteuid() != 0:
            return
        _tried.add(package)
        log(f"{package} not found; installing it with apt-get (first run only)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
        ):
            result = subprocess.run(
                cmd, env=env, capture_output=True, text=True, check=False, timeout=600
            )
            if result.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")


def which_or_install(binary: str, package: str) -> str | None:
    """The path of ``binary``, installing Debian's ``package`` first when it
    is missing (see ``apt_install``); None when it is still missing."""
    found = shutil.which(binary)
    if found is None:
        apt_install(package)
        found = shutil.which(binary)
    return found

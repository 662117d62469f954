"""Several worker processes, one ``/metrics``: each worker writes its statistics to a shared
directory and whichever worker answers a scrape merges them all.

Why not per-process export: behind gunicorn or ``uvicorn --workers N`` every worker listens on
the same port, so a scrape reaches one worker at random and per-process counters jump back and
forth. Why not prometheus-client's own multiprocess files: they hold fixed classic buckets per
value; lagless's histograms are exponential and merge exactly by adding counts, so lagless keeps
its own file per process, following prometheus-client's conventions for the rest:

- the directory is ``metrics_dir``, else ``$PROMETHEUS_MULTIPROC_DIR`` (lagless's files are
  ``lagless-<pid>.json``, beside prometheus-client's ``*.db`` files, which ``/metrics`` merges
  too);
- wipe the directory when the server (re)starts, before workers fork, as prometheus-client's
  documentation says; a worker that exits keeps its counts (counters and histograms never go
  down), and its file is rewritten a last time at exit.

Each worker rewrites its file (atomically, through ``os.replace``) at most once per
``interval`` seconds from a daemon thread, and only if it recorded something since, so the cost
is off the request path; a scrape may see up to ``interval`` seconds of staleness from other
workers, never from the worker that answers.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from lagless._guard import report_internal_error
from lagless.monitor._stats import Stats

_PREFIX = "lagless-"


def shared_dir(configured: str | None) -> str | None:
    """``metrics_dir`` or ``$PROMETHEUS_MULTIPROC_DIR``; ``None`` for a single process."""
    return configured or os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class SharedStats:
    """This process's file in the shared directory and the merge of everyone's."""

    def __init__(
        self,
        directory: str,
        stats: Stats,
        *,
        interval: float = 1.0,
        extra: Any = None,
    ) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            from lagless.errors import ConfigError

            raise ConfigError(f"metrics directory {directory!r} does not exist")
        self.stats = stats
        self.interval = interval
        #: Optional callable returning more JSON-ready state to store (browser timings).
        self.extra = extra
        self._written = -1
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._pid = os.getpid()
        atexit.register(self.flush)

    @property
    def path(self) -> Path:
        return self.directory / f"{_PREFIX}{os.getpid()}.json"

    def flush(self, *, force: bool = False) -> bool:
        """Write this process's file if it recorded anything since the last write."""
        try:
            updates = self.stats.updates
            if updates == self._written and not force:
                return False
            data = self.stats.to_dict()
            data["pid"] = os.getpid()
            if self.extra is not None:
                data["extra"] = self.extra()
            target = self.path
            tmp = target.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, separators=(",", ":")))
            os.replace(tmp, target)
            self._written = updates
            return True
        except Exception as exc:
            report_internal_error("monitor:flush", exc)
            return False

    def start(self) -> None:
        """Start the flusher thread for this process (again in a forked child)."""
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lagless-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def after_fork(self) -> None:
        """In a forked worker: the thread did not survive the fork, and the counts belong to
        the parent (which keeps writing its own file)."""
        self._written = -1
        self._thread = None
        if not self._stop.is_set():
            self.start()

    def others(self) -> list[dict[str, Any]]:
        """Every other process's last written state (unreadable files are skipped: a file
        is replaced atomically, so that means it was removed mid-read)."""
        mine = self.path.name
        out = []
        for file in sorted(self.directory.glob(f"{_PREFIX}*.json")):
            if file.name == mine:
                continue
            with contextlib.suppress(OSError, ValueError):
                out.append(json.loads(file.read_text()))
        return out

    def merged(self) -> tuple[Stats, list[dict[str, Any]], int]:
        """All processes' statistics merged (this one's live), the others' ``extra`` states,
        and how many processes contributed."""
        total = self.stats.copy()
        extras = []
        others = self.others()
        for data in others:
            total.merge(Stats.from_dict(data, max_routes=total.max_routes))
            if data.get("extra") is not None:
                extras.append(data["extra"])
        return total, extras, 1 + len(others)

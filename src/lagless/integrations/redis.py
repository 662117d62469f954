"""Capture of redis-py calls (sync and asyncio clients, pipelines and transactions).

redis-py has no per-command hook to listen to (its ``observability`` package exports
OpenTelemetry metrics, not a callback), so this integration wraps the few methods every command
goes through:

- ``Redis.execute_command`` (sync and ``redis.asyncio``): one ``cache`` span per command, named
  after it (``GET``, ``SET``, ``CONFIG GET``);
- ``Pipeline.execute``: one ``PIPELINE`` span for the whole round trip, with how many commands
  it carried;
- ``Pipeline.immediate_execute_command``: commands a pipeline runs at once while it WATCHes.

Span attributes: ``driver="redis"``; ``key``, the command's first key with its variable parts
folded (``user:{}:profile``; the raw key only under ``record_params``, because keys hold
session tokens and e-mail addresses); ``key_hash``, a process-local hash of the raw key, so a
detector can tell one key read ten times from ten keys; ``hit`` for reads (and ``hits`` /
``misses`` for multi-key reads); ``bytes`` of the value read or written, when it is at hand;
``on_loop`` when a sync client blocked a running event loop; ``error`` when the call raised.

Install with ``lagless.install_integrations(["redis"])`` (``lagless.instrument`` does it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from time import perf_counter_ns as _now
from typing import Any, Final

from lagless._guard import report_internal_error
from lagless._spans import error_text, on_event_loop, params_fingerprint, record
from lagless._trace import Trace, _current_trace
from lagless.integrations._base import Integration
from lagless.integrations._clients import Patches, as_text, fold, record_params

# Commands whose first argument is not a key (server, connection and scripting commands, and
# those whose leading arguments are options). Checked on the command's first word, because
# redis-py sends sub-commands as one string (``"CONFIG GET"``).
_NO_KEY: Final = frozenset(
    {
        "ACL", "AUTH", "BGREWRITEAOF", "BGSAVE", "CLIENT", "CLUSTER", "COMMAND", "CONFIG",
        "DBSIZE", "DEBUG", "DISCARD", "ECHO", "EXEC", "FLUSHALL", "FLUSHDB", "FUNCTION",
        "HELLO", "INFO", "KEYS", "LASTSAVE", "LATENCY", "MEMORY", "MODULE", "MONITOR", "MULTI",
        "PING", "PUBSUB", "QUIT", "RANDOMKEY", "READONLY", "READWRITE", "ROLE", "SAVE", "SCAN",
        "SCRIPT", "SELECT", "SHUTDOWN", "SLOWLOG", "SWAPDB", "TIME", "UNWATCH", "WAIT",
        "XREAD", "XREADGROUP",
    }
)  # fmt: skip
# ``EVAL script numkeys key ...``: the first key is the fourth argument.
_SCRIPTS: Final = frozenset({"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"})

# Reads and how a hit shows in their reply.
_SINGLE_READS: Final = frozenset({"GET", "GETEX", "GETDEL", "HGET", "LINDEX", "ZSCORE"})
_COLLECTION_READS: Final = frozenset(
    {"HGETALL", "SMEMBERS", "HKEYS", "HVALS", "LRANGE", "ZRANGE", "ZRANGEBYSCORE"}
)
_MULTI_READS: Final = frozenset({"MGET", "HMGET"})
_EXISTS_READS: Final = frozenset({"EXISTS", "HEXISTS", "SISMEMBER"})
# Writes whose value argument is at a fixed position.
_VALUE_AT: Final = {"SET": 2, "SETNX": 2, "GETSET": 2, "APPEND": 2, "SETEX": 3, "PSETEX": 3}

_CACHE: Final = "cache"


def _command_name(arg: Any) -> str:
    return arg.upper() if type(arg) is str else as_text(arg).upper()


def _first_key(name: str, args: Sequence[Any], options: dict[str, Any]) -> Any:
    keys = options.get("keys")
    if keys:
        return keys[0]
    if len(args) < 2 or name.partition(" ")[0] in _NO_KEY:
        return None
    if name in _SCRIPTS:
        try:
            return args[3] if len(args) > 3 and int(args[2]) > 0 else None
        except (TypeError, ValueError):
            return None
    return args[1]


def _read_outcome(name: str, args: Sequence[Any], result: Any) -> tuple[int, int] | None:
    """``(hits, misses)`` of a read command's reply, or ``None`` if it is not a read."""
    if name in _SINGLE_READS:
        return (0, 1) if result is None else (1, 0)
    if name in _COLLECTION_READS:
        return (1, 0) if result else (0, 1)
    if name in _MULTI_READS and isinstance(result, _SEQUENCES):
        hits = sum(1 for value in result if value is not None)
        return hits, len(result) - hits
    if name in _EXISTS_READS:
        if name == "EXISTS" and isinstance(result, int) and not isinstance(result, bool):
            return result, max(len(args) - 1 - result, 0)
        return (1, 0) if result else (0, 1)
    return None


# Tuples, not ``X | Y`` unions: ``isinstance`` checks a tuple several times faster.
_SIZED: Final = (bytes, str, bytearray, memoryview)
_SEQUENCES: Final = (list, tuple)


def _size(value: Any) -> int | None:
    if isinstance(value, _SIZED):
        return len(value)
    return None


def _value_bytes(name: str, args: Sequence[Any], result: Any) -> int | None:
    """Size of the value moved, where it costs no more than a ``len``."""
    pos = _VALUE_AT.get(name)
    if pos is not None:
        return _size(args[pos]) if len(args) > pos else None
    size = _size(result)
    if size is None and name in _MULTI_READS and isinstance(result, _SEQUENCES):
        return sum(len(v) for v in result if isinstance(v, _SIZED))
    return size


def _set_outcome(attrs: dict[str, Any], hits: int, misses: int) -> None:
    attrs["hit"] = misses == 0 and hits > 0
    if hits + misses > 1:
        attrs["hits"] = hits
        attrs["misses"] = misses


def _record_command(
    trace: Trace,
    args: tuple[Any, ...],
    options: dict[str, Any],
    start: int,
    result: Any,
    error: BaseException | None,
    on_loop: bool,
) -> None:
    end = _now()
    try:
        # One function with the common single-key reads inlined: every helper call here is
        # paid on each command, and this is the whole of what lagless adds to a round trip.
        name = args[0] if args else "?"
        name = name.upper() if type(name) is str else _command_name(name)
        attrs: dict[str, Any] = {"driver": "redis"}
        keys = options.get("keys")
        key = keys[0] if keys else _first_key(name, args, options)
        if key is not None:
            text = key if type(key) is str else as_text(key)
            attrs["key"] = text if record_params() else fold(text)
            attrs["key_hash"] = params_fingerprint(text)
        if error is not None:
            attrs["error"] = error_text(error)
        elif name in _SINGLE_READS:
            attrs["hit"] = result is not None
            if isinstance(result, _SIZED):
                attrs["bytes"] = len(result)
        else:
            outcome = _read_outcome(name, args, result)
            if outcome is not None:
                _set_outcome(attrs, *outcome)
            size = _value_bytes(name, args, result)
            if size is not None:
                attrs["bytes"] = size
        if on_loop:
            attrs["on_loop"] = True
        # Straight to ``add_span``: ``record(**attrs)`` would repack the dict.
        trace.add_span(_CACHE, name, start, end, attrs)
    except Exception as exc:
        report_internal_error("redis:command", exc)


def _pipeline_facts(pipe: Any) -> tuple[list[tuple[Any, ...]], bool]:
    """The queued commands' arguments (read before ``execute`` empties the stack) and whether
    it is a MULTI/EXEC transaction (``transaction`` sync, ``is_transaction`` asyncio)."""
    commands = [entry[0] for entry in pipe.command_stack]
    transaction = bool(
        getattr(pipe, "transaction", False)
        or getattr(pipe, "is_transaction", False)
        or getattr(pipe, "explicit_transaction", False)
    )
    return commands, transaction


def _record_pipeline(
    trace: Trace,
    commands: list[tuple[Any, ...]],
    transaction: bool,
    start: int,
    result: Any,
    error: BaseException | None,
    on_loop: bool,
) -> None:
    end = _now()
    try:
        attrs: dict[str, Any] = {"driver": "redis", "commands": len(commands)}
        names = [_command_name(args[0]) for args in commands if args]
        attrs["ops"] = ",".join(dict.fromkeys(names))[:200]
        if transaction:
            attrs["transaction"] = True
        if error is None and isinstance(result, list) and len(result) == len(commands):
            hits = misses = size = 0
            reads = False
            for name, args, reply in zip(names, commands, result, strict=False):
                if isinstance(reply, BaseException):
                    continue
                outcome = _read_outcome(name, args, reply)
                if outcome is not None:
                    reads = True
                    hits += outcome[0]
                    misses += outcome[1]
                size += _value_bytes(name, args, reply) or 0
            if reads:
                attrs["hits"] = hits
                attrs["misses"] = misses
                attrs["hit"] = misses == 0 and hits > 0
            if size:
                attrs["bytes"] = size
        if on_loop:
            attrs["on_loop"] = True
        record(trace, _CACHE, "PIPELINE", start, end, error=error, **attrs)
    except Exception as exc:
        report_internal_error("redis:pipeline", exc)


def _wrap_sync_command(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def execute_command(self: Any, *args: Any, **options: Any) -> Any:
        trace = _current_trace.get()
        if trace is None:
            return original(self, *args, **options)
        start = _now()
        try:
            result = original(self, *args, **options)
        except BaseException as exc:
            _record_command(trace, args, options, start, None, exc, on_event_loop())
            raise
        _record_command(trace, args, options, start, result, None, on_event_loop())
        return result

    return execute_command


def _wrap_async_command(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def execute_command(self: Any, *args: Any, **options: Any) -> Any:
        trace = _current_trace.get()
        if trace is None:
            return await original(self, *args, **options)
        start = _now()
        try:
            result = await original(self, *args, **options)
        except BaseException as exc:
            _record_command(trace, args, options, start, None, exc, False)
            raise
        _record_command(trace, args, options, start, result, None, False)
        return result

    return execute_command


def _wrap_sync_execute(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or not self.command_stack:
            return original(self, *args, **kwargs)
        commands, transaction = _pipeline_facts(self)
        start = _now()
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            _record_pipeline(trace, commands, transaction, start, None, exc, on_event_loop())
            raise
        _record_pipeline(trace, commands, transaction, start, result, None, on_event_loop())
        return result

    return execute


def _wrap_async_execute(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or not self.command_stack:
            return await original(self, *args, **kwargs)
        commands, transaction = _pipeline_facts(self)
        start = _now()
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as exc:
            _record_pipeline(trace, commands, transaction, start, None, exc, False)
            raise
        _record_pipeline(trace, commands, transaction, start, result, None, False)
        return result

    return execute


class RedisIntegration(Integration):
    """Record every redis-py command and pipeline as a ``cache`` span."""

    name = "redis"
    module = "redis"
    distribution = "redis"

    def __init__(self) -> None:
        super().__init__()
        self._patches = Patches()

    def _install(self) -> None:
        import redis.asyncio.client as async_client
        import redis.client as sync_client

        patches = self._patches
        try:
            patches.wrap(sync_client.Redis, "execute_command", _wrap_sync_command)
            patches.wrap(sync_client.Pipeline, "execute", _wrap_sync_execute)
            patches.wrap(sync_client.Pipeline, "immediate_execute_command", _wrap_sync_command)
            patches.wrap(async_client.Redis, "execute_command", _wrap_async_command)
            patches.wrap(async_client.Pipeline, "execute", _wrap_async_execute)
            patches.wrap(async_client.Pipeline, "immediate_execute_command", _wrap_async_command)
        except BaseException:
            patches.restore()
            raise

    def _uninstall(self) -> None:
        self._patches.restore()

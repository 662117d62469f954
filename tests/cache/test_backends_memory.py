from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest

from lagless.cache import (
    BackendUnavailable,
    CircuitBreaker,
    JsonSerializer,
    MemoryBackend,
    MsgpackSerializer,
    PickleSerializer,
    SerializationError,
)
from lagless.cache._backend import pack, unpack
from lagless.cache._memory import ENTRY_OVERHEAD


class Mono:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_ttl_expires_entries() -> None:
    mono = Mono()
    backend = MemoryBackend(clock=mono)
    backend.set("a", b"1", ttl=5)
    assert backend.get("a") == b"1"
    mono.t += 4.9
    assert backend.get("a") == b"1"
    mono.t += 0.2
    assert backend.get("a") is None
    assert len(backend) == 0 and backend.size_bytes == 0


def test_lru_eviction_by_entry_count() -> None:
    backend = MemoryBackend(max_entries=3)
    for key in "abc":
        backend.set(key, b"x", ttl=60)
    assert backend.get("a") == b"x"  # a is now most recently used
    backend.set("d", b"x", ttl=60)
    assert backend.get("b") is None  # least recently used went first
    assert {k for k in "acd" if backend.get(k)} == {"a", "c", "d"}
    assert backend.evictions == 1


def test_eviction_by_bytes() -> None:
    per_entry = 100 + 1 + ENTRY_OVERHEAD
    backend = MemoryBackend(max_entries=1000, max_bytes=per_entry * 3)
    for key in "abcd":
        backend.set(key, b"v" * 100, ttl=60)
    assert backend.size_bytes <= per_entry * 3
    assert backend.get("a") is None and backend.get("d") is not None
    # A value larger than the whole budget is not stored (and evicts nothing).
    backend.set("huge", b"v" * (per_entry * 4), ttl=60)
    assert backend.get("huge") is None and backend.get("d") is not None


def test_tags_and_overwrite() -> None:
    backend = MemoryBackend()
    backend.set("u1", b"1", ttl=60, tags=["users", "user:1"])
    backend.set("u2", b"2", ttl=60, tags=["users"])
    backend.set("p1", b"3", ttl=60, tags=["products"])
    assert sorted(backend.invalidate_tags(["user:1"])) == ["u1"]
    assert backend.get("u2") == b"2"
    backend.set("u2", b"2b", ttl=60)  # overwritten without tags: no longer in "users"
    assert backend.invalidate_tags(["users"]) == []
    assert backend.get("u2") == b"2b" and backend.get("p1") == b"3"


def test_locks() -> None:
    mono = Mono()
    backend = MemoryBackend(clock=mono)
    token = backend.lock("k", ttl=10)
    assert token is not None
    assert backend.lock("k", ttl=10) is None
    backend.unlock("k", "not-the-token")
    assert backend.lock("k", ttl=10) is None
    mono.t += 11  # a holder that died releases by expiry
    assert backend.lock("k", ttl=10) is not None


def test_thread_and_task_safety() -> None:
    backend = MemoryBackend(max_entries=50, max_bytes=50_000)

    def hammer(n: int) -> None:
        for i in range(2000):
            key = f"k{(i * 7 + n) % 80}"
            backend.set(key, b"x" * (i % 50), ttl=60, tags=[f"t{i % 5}"])
            backend.get(key)
            if i % 97 == 0:
                backend.invalidate_tags([f"t{i % 5}"])

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()

    async def tasks() -> None:
        async def one(n: int) -> None:
            for i in range(500):
                await backend.aset(f"a{i % 60}", b"y", ttl=60)
                await backend.aget(f"a{(i + n) % 60}")
                await asyncio.sleep(0)

        await asyncio.gather(*(one(n) for n in range(10)))

    asyncio.run(tasks())
    for t in threads:
        t.join()
    assert len(backend) <= 50
    assert backend.size_bytes == sum(e[2] for e in backend._data.values())
    assert all(k in backend._data for keys in backend._tags.values() for k in keys)


@pytest.mark.parametrize("serializer", [MsgpackSerializer(), JsonSerializer()])
def test_serializers_round_trip(serializer: MsgpackSerializer | JsonSerializer) -> None:
    value = {"id": 1, "name": "Zoë", "tags": ["a", "b"], "price": 9.5, "ok": True, "none": None}
    assert serializer.loads(serializer.dumps(value)) == value


def test_msgpack_keeps_bytes_and_aware_datetimes() -> None:
    serializer = MsgpackSerializer()
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert serializer.loads(serializer.dumps({"b": b"\x00\xff", "t": when})) == {
        "b": b"\x00\xff",
        "t": when,
    }
    with pytest.raises(SerializationError, match="timezone-aware"):
        serializer.dumps(datetime(2026, 1, 1))
    with pytest.raises(SerializationError):
        serializer.dumps({"x": object()})


def test_pickle_is_signed_and_refuses_tampering() -> None:
    serializer = PickleSerializer(secret="s" * 32)
    data = serializer.dumps({1, 2, 3})
    assert serializer.loads(data) == {1, 2, 3}
    tampered = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(SerializationError, match="signature"):
        serializer.loads(tampered)
    other = PickleSerializer(secret="t" * 32)
    with pytest.raises(SerializationError):
        other.loads(data)
    with pytest.raises(ValueError, match="16 bytes"):
        PickleSerializer(secret="short")


def test_envelope_round_trip_and_foreign_bytes() -> None:
    data = pack(2, b"payload", 10.5, 20.25)
    assert unpack(data) == (2, 10.5, 20.25, b"payload")
    assert unpack(b"short") is None
    assert unpack(b"\x07" + data[1:]) is None


def test_circuit_breaker_opens_and_recovers() -> None:
    mono = Mono()
    breaker = CircuitBreaker(failure_threshold=3, reset_after=5, clock=mono)
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state == "closed"
    breaker.failure()
    assert breaker.state == "open" and breaker.opened == 1
    assert not breaker.allow()
    mono.t += 5
    assert breaker.allow()  # one trial call
    assert not breaker.allow()  # ...and only one
    breaker.failure()
    assert breaker.state == "open" and breaker.opened == 2
    mono.t += 5
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()
    assert issubclass(BackendUnavailable, Exception)

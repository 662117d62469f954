from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess

import pytest

from lagless.payload import compress, decode, dumps_msgpack, js_client_path

VALUE = {
    "small": 5,
    "neg": -3,
    "neg16": -200,
    "neg32": -70000,
    "u8": 200,
    "u16": 60000,
    "u32": 4_000_000_000,
    "big": 2**60,
    "float": 1.5,
    "none": None,
    "flags": [True, False],
    "text": "héllo ✓",
    "long": "x" * 300,
    "list": list(range(20)),
    "map": {f"k{i}": i for i in range(20)},
    "__proto__": {"polluted": True},
    "when": dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC),
    "bin": b"\x00\x01\x02",
}


def test_python_decode_handles_formats_and_codings() -> None:
    packed = dumps_msgpack({"a": 1})
    assert decode(packed, "application/msgpack") == {"a": 1}
    assert decode(packed, "application/x-msgpack; charset=binary") == {"a": 1}
    assert decode(b'{"a":1}', "application/json") == {"a": 1}
    assert decode(b'{"a":1}') == {"a": 1}
    assert decode(compress(packed, "zstd"), "application/msgpack", "zstd") == {"a": 1}
    assert decode(compress(b"[1]", "br"), "application/json", "br") == [1]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_js_decoder_matches_python(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "payload.bin").write_bytes(dumps_msgpack(VALUE))
    script = f"""
    const m = require({json.dumps(str(js_client_path()))});
    const fs = require("fs");
    const v = m.decode(fs.readFileSync({json.dumps(str(tmp_path / "payload.bin"))}));
    const out = Object.create(null);  // so a "__proto__" key stays a plain key here too
    for (const k of Object.keys(v)) {{
      const x = v[k];
      if (x instanceof Date) out[k] = "date:" + x.toISOString();
      else if (x instanceof Uint8Array) out[k] = "bin:" + Array.from(x).join(",");
      else if (typeof x === "bigint") out[k] = "bigint:" + x.toString();
      else out[k] = x;
    }}
    out.protoIsObject = Object.getPrototypeOf(v) === Object.prototype && v.polluted === undefined;
    let truncated = false;
    try {{ m.decode(new Uint8Array([0x92, 0x01])); }}
    catch (e) {{ truncated = e instanceof RangeError; }}
    out.truncatedRaises = truncated;
    console.log(JSON.stringify(out));
    """
    done = subprocess.run(
        ["node", "-e", script], capture_output=True, text=True, timeout=30, check=True
    )
    out = json.loads(done.stdout)
    assert out.pop("when") == "date:2024-01-02T03:04:05.678Z"
    assert out.pop("bin") == "bin:0,1,2"
    assert out.pop("big") == f"bigint:{2**60}"
    assert out.pop("protoIsObject") is True
    assert out.pop("truncatedRaises") is True
    expected = {k: v for k, v in VALUE.items() if k not in ("when", "bin", "big")}
    assert out == expected


def test_importing_payload_loads_no_framework_or_encoder() -> None:
    import sys

    code = (
        "import sys, lagless, lagless.payload as p; "
        "assert callable(p.dumps); "
        "heavy = [m for m in ('starlette', 'fastapi', 'flask', 'django', 'rest_framework', "
        "'msgspec', 'brotli', 'zstandard') if m in sys.modules]; print(heavy)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_lazy_adapters_resolve() -> None:
    import lagless.payload as p

    for name in p.__all__:
        assert getattr(p, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        p.Nope  # noqa: B018

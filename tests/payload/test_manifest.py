from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from lagless.cli import main
from lagless.payload import Manifest, ManifestError, build_static, decompress
from lagless.payload._manifest import hashed_name

JS = b"export const answer = 42;\n" * 40


@pytest.fixture
def src(tmp_path: Path) -> Path:
    s = tmp_path / "src"
    (s / "js").mkdir(parents=True)
    (s / "js" / "app.js").write_bytes(JS)
    (s / "img.png").write_bytes(b"\x89PNG" + bytes(600))
    (s / ".hidden").write_text("no")
    (s / "tiny.txt").write_text("x")
    (tmp_path / "outside.txt").write_text("outside")
    (s / "escape.txt").symlink_to(tmp_path / "outside.txt")
    return s


def test_build_fingerprints_and_precompresses(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = build_static(src, out)
    digest = hashlib.sha256(JS).hexdigest()[:12]
    assert manifest.files == {
        "img.png": hashed_name(
            "img.png", hashlib.sha256((src / "img.png").read_bytes()).hexdigest()
        ),
        "js/app.js": f"js/app.{digest}.js",
        "tiny.txt": hashed_name("tiny.txt", hashlib.sha256(b"x").hexdigest()),
    }
    assert (out / "js" / "app.js").read_bytes() == JS
    assert (out / f"js/app.{digest}.js").read_bytes() == JS
    for suffix, coding in ((".br", "br"), (".gz", "gzip"), (".zst", "zstd")):
        assert decompress((out / f"js/app.{digest}.js{suffix}").read_bytes(), coding) == JS
    assert not list(out.glob("img*.png.*"))  # already compressed type: no siblings
    assert not list(out.glob("tiny*.txt.*"))  # too small to be worth it
    assert not (out / ".hidden").exists() and not (out / "escape.txt").exists()
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["version"] == 1 and on_disk["files"] == manifest.files


def test_resolve_with_and_without_cdn(src: Path, tmp_path: Path) -> None:
    build_static(src, tmp_path / "out", cdn="https://cdn.example.com/assets/")
    loaded = Manifest.load(tmp_path / "out")
    hashed = loaded.hashed("js/app.js")
    assert loaded.url("js/app.js") == f"https://cdn.example.com/assets/{hashed}"
    local = Manifest.load(tmp_path / "out" / "manifest.json", cdn="", base_url="/static")
    assert local.url("/js/app.js") == f"/static/{hashed}"
    other = Manifest.load(tmp_path / "out", cdn="https://other.example")
    assert other.url("js/app.js") == f"https://other.example/{hashed}"
    with pytest.raises(ManifestError, match=r"did you mean 'js/app\.js'"):
        loaded.url("js/ap.js")


def test_rebuild_after_change_gives_a_new_name(src: Path, tmp_path: Path) -> None:
    first = build_static(src, tmp_path / "out").hashed("js/app.js")
    (src / "js" / "app.js").write_bytes(JS + b"// changed\n")
    second = build_static(src, tmp_path / "out").hashed("js/app.js")
    assert first != second and (tmp_path / "out" / second).exists()


def test_bad_inputs(src: Path, tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="inside"):
        build_static(src, src / "out")
    with pytest.raises(ManifestError, match="does not exist"):
        build_static(tmp_path / "nope", tmp_path / "out")
    with pytest.raises(ManifestError, match="no manifest"):
        Manifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text('{"version": 99}')
    with pytest.raises(ManifestError, match="not a lagless manifest"):
        Manifest.load(tmp_path)


def test_hashed_name_shapes() -> None:
    assert hashed_name("a/b.min.js", "0123456789abcdef") == "a/b.min.0123456789ab.js"
    assert hashed_name("LICENSE", "0123456789abcdef") == "LICENSE.0123456789ab"
    assert hashed_name(".well", "0123456789abcdef") == ".well.0123456789ab"


def test_cli_build(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli-out"
    assert main(["static", "build", str(src), str(out), "--cdn", "https://cdn.example"]) == 0
    assert "built 3 file(s)" in capsys.readouterr().out
    assert Manifest.load(out).cdn == "https://cdn.example"
    assert main(["static", "build", str(tmp_path / "missing"), str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["static"]) == 2

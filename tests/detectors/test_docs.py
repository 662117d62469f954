"""docs/detectors.md documents every detector with an example generated from these tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lagless.detectors import DETECTORS

from ._examples import EXAMPLES, example

DOC = Path(__file__).resolve().parents[2] / "docs" / "detectors.md"
BLOCK = re.compile(r"<!-- example: (\S+) -->\n```json\n(.*?)\n```", re.S)


def blocks() -> dict[str, dict]:
    return {m.group(1): json.loads(m.group(2)) for m in BLOCK.finditer(DOC.read_text("utf-8"))}


def test_every_detector_has_a_documented_example():
    assert set(EXAMPLES) == set(DETECTORS)
    assert set(blocks()) == set(DETECTORS)
    text = DOC.read_text("utf-8")
    for code in DETECTORS:
        assert f"| `{code}` |" in text  # in the thresholds table


@pytest.mark.parametrize("code", sorted(EXAMPLES))
def test_documented_example_is_what_the_detector_produces(code):
    assert blocks()[code] == json.loads(json.dumps(example(code))), (
        "docs/detectors.md is out of date: regenerate the block with "
        "`python -m tests.detectors._examples`"
    )

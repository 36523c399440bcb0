"""docs/api.md, the API reference, covers every public name and is the text the docstrings
give (scripts/gen_api_md.py writes it from them)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import lowbit as lb

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PAGE = os.path.join(ROOT, "docs", "api.md")
GEN = os.path.join(ROOT, "scripts", "gen_api_md.py")

pytestmark = pytest.mark.skipif(not os.path.exists(GEN), reason="not run from a source tree")


def test_api_md_covers_every_public_name():
    with open(PAGE) as f:
        page = f.read()
    for name in lb.__all__:
        assert f"### `lowbit.{name}`" in page, name
    for section in ("## Rounding and arithmetic", "## Granularity", "## Errors"):
        assert section in page


@pytest.mark.skipif(sys.version_info[:2] != (3, 11),
                    reason="signatures render differently on other Python versions; the page "
                           "is generated with Python 3.11")
def test_api_md_is_up_to_date():
    r = subprocess.run([sys.executable, GEN, "--check"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr

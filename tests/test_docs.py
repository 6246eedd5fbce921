"""The guides name files a newcomer will open: each one must exist."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_PATH = re.compile(r"`((?:host|firmware|protocol|tools|tests|docs|models)/[\w./]+)`")


@pytest.mark.parametrize("guide", ["README.md", "docs/CONTRIBUTING.md", "docs/KERNELS.md"])
def test_every_repository_path_a_guide_names_exists(guide):
    named = set(_PATH.findall((ROOT / guide).read_text()))
    assert named, "no paths found: the pattern no longer matches the guide"
    missing = sorted(p for p in named if "x.py" not in p and not (ROOT / p.rstrip("/")).exists())
    assert not missing, "%s names files that do not exist: %s" % (guide, missing)

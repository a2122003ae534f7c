"""translate() of each ``translate/<case>.in.yaml`` must equal ``translate/<case>.out.yaml`` (IR snapshot in its
codec form, and every computed status)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from nantian.ir import converter
from nantian.resources import ResourceSet, parse_object
from nantian.translate import TranslateOptions, translate

HERE = Path(__file__).parent / "translate"
INPUTS = sorted(HERE.glob("*.in.yaml"))
OPTIONS = TranslateOptions(controller_name="nantian.io/gateway-controller", address_pool="127.10.0.0/16")


def _output(path: Path) -> str:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    objects = [parse_object(d) for d in docs]
    translation = translate(ResourceSet.from_objects(objects), OPTIONS)
    out: dict[str, Any] = {
        "snapshot": converter.unstructure(translation.snapshot),
        "statuses": {str(ref): status for ref, status in sorted(translation.statuses.items())},
    }
    return yaml.safe_dump(out, sort_keys=True, width=120)


def test_goldens_exist() -> None:
    assert len(INPUTS) >= 3


@pytest.mark.parametrize("path", INPUTS, ids=[p.name.removesuffix(".in.yaml") for p in INPUTS])
def test_golden(path: Path, update_golden: bool) -> None:
    expected_path = path.with_name(path.name.replace(".in.yaml", ".out.yaml"))
    got = _output(path)
    if update_golden or not expected_path.exists():
        expected_path.write_text(got)
        if not update_golden:
            pytest.fail(f"{expected_path.name} was missing and has been written: review and commit it")
    assert got == expected_path.read_text()

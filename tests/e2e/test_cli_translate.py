"""`nantian translate` as a user runs it: a real subprocess, a directory or stdin, JSON or YAML out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"


def _nantian(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nantian", "--log-level", "warning", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_translate_directory_prints_snapshot_and_statuses() -> None:
    result = _nantian("translate", str(QUICKSTART))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == {"snapshot", "resources"}
    assert doc["snapshot"]["version"]
    listeners = doc["snapshot"]["listeners"]
    assert [(lst["address"], lst["port"]) for lst in listeners] == [("127.0.0.10", 8080)]
    gateway = next(o for o in doc["resources"] if o["kind"] == "Gateway")
    accepted = {c["type"]: c["status"] for c in gateway["status"]["conditions"]}
    assert accepted["Accepted"] == "True"
    route = next(o for o in doc["resources"] if o["kind"] == "HTTPRoute")
    assert route["status"]["parents"][0]["conditions"][0]["status"] == "True"


def test_translate_stdin_yaml_output() -> None:
    text = "\n---\n".join(p.read_text() for p in sorted(QUICKSTART.glob("*.yaml")))
    result = _nantian("translate", "-", "-o", "yaml", stdin=text)
    assert result.returncode == 0, result.stderr
    doc = yaml.safe_load(result.stdout)
    assert doc["snapshot"]["listeners"][0]["port"] == 8080


def test_unreadable_input_is_a_one_line_error(tmp_path: Path) -> None:
    result = _nantian("translate", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "missing" in result.stderr


def test_a_bad_document_is_reported_and_the_rest_translated(tmp_path: Path) -> None:
    for p in QUICKSTART.glob("*.yaml"):
        (tmp_path / p.name).write_text(p.read_text())
    (tmp_path / "broken.yaml").write_text(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: bad, namespace: default}\n"
        "spec:\n  parentRefs: [{name: quickstart, port: not-a-port}]\n"
    )
    result = _nantian("translate", str(tmp_path))
    assert result.returncode == 1
    assert "broken.yaml" in result.stderr and "port" in result.stderr
    doc = json.loads(result.stdout)
    assert doc["snapshot"]["listeners"], "the good documents are still translated"
    bad = [o for o in doc["resources"] if o["metadata"].get("name") == "bad"]
    assert bad and "nantianError" in bad[0]["status"]

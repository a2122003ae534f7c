"""Generate Python code from ``proto/`` into ``nantian._proto`` with grpcio-tools.

Generated code is never edited or committed: ``make`` runs ``python -m nantian._protogen`` after
installing, and :func:`ensure` regenerates on import when the output is missing or older than a .proto.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

__all__ = ["ensure", "generate"]

_PACKAGE = Path(__file__).resolve().parent
_OUT = _PACKAGE / "_proto"
_SOURCES = (_PACKAGE.parent.parent / "proto", _PACKAGE / "proto")


def _proto_root() -> Path:
    for root in _SOURCES:
        if root.is_dir():
            return root
    raise FileNotFoundError("no proto/ directory found next to the nantian package")


def _stale(root: Path) -> bool:
    marker = _OUT / "__init__.py"
    if not marker.exists():
        return True
    built = marker.stat().st_mtime
    return any(p.stat().st_mtime > built for p in root.rglob("*.proto"))


def generate() -> list[Path]:
    """Compile every ``.proto`` under the proto root; returns the generated modules."""
    from grpc_tools import protoc  # build-time dependency

    root = _proto_root()
    protos = sorted(root.rglob("*.proto"))
    _OUT.mkdir(exist_ok=True)
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{root}",
        f"-I{include}",
        f"--python_out={_OUT}",
        f"--pyi_out={_OUT}",
        f"--grpc_python_out={_OUT}",
        *map(str, protos),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed on " + ", ".join(map(str, protos)))
    top = sorted({p.relative_to(root).parts[0] for p in protos})
    pattern = re.compile(rf"^(from|import) ({'|'.join(map(re.escape, top))})(\.|\s)", re.M)
    generated = sorted(_OUT.rglob("*.py*"))
    for path in generated:
        text = path.read_text()
        fixed = pattern.sub(lambda m: f"{m[1]} nantian._proto.{m[2]}{m[3]}", text)
        if fixed != text:
            path.write_text(fixed)
    for d in [_OUT, *(p for p in _OUT.rglob("*") if p.is_dir())]:
        (d / "__init__.py").touch()
    (_OUT / "__init__.py").touch()  # newest file: marks the generation time
    return [p for p in generated if p.suffix == ".py"]


def ensure() -> None:
    """Generate the code if it is missing or older than its .proto files (no-op in an installed wheel)."""
    try:
        root = _proto_root()
    except FileNotFoundError:
        return
    if _stale(root):
        generate()


if __name__ == "__main__":
    for module in generate():
        print(module.relative_to(_PACKAGE.parent), file=sys.stderr)

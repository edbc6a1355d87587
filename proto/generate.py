"""Generate the Python stubs in dedup/v1 from proto/dedup/v1/*.proto.

The stubs are committed so an install needs no code generator; tests/test_generated.py
regenerates them into a temporary folder and fails if the committed copy has drifted.
Run with `make proto`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
PACKAGE_DIR = PROTO_ROOT.parent / "dedup" / "v1"
HEADER = "# Generated from proto/dedup/v1 by proto/generate.py (make proto). Do not edit.\n"


def generate(out_dir: Path) -> list[Path]:
    """Run protoc into out_dir; return the generated files (relative to out_dir)."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "dedup" / "v1").glob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    files = sorted(p.relative_to(out_dir / "dedup" / "v1") for p in (out_dir / "dedup" / "v1").iterdir())
    for rel in files:
        path = out_dir / "dedup" / "v1" / rel
        path.write_text(HEADER + path.read_text())
    return files


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        files = generate(out)
        for old in PACKAGE_DIR.glob("*_pb2*.py*"):
            old.unlink()
        for rel in files:
            shutil.copyfile(out / "dedup" / "v1" / rel, PACKAGE_DIR / rel)
    print(f"wrote {len(files)} files to {PACKAGE_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

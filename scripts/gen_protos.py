"""Generate the Python protobuf/gRPC code and its type stubs from ``proto/``.

The one way generated code is made (``make proto``). Output goes to
``python/lendgate/v1/`` — the Python package that mirrors the proto package
``lendgate.v1`` — so the generated ``from lendgate.v1 import x_pb2`` imports work
unmodified. ``--check`` regenerates into a temporary directory and fails on any
difference from what is committed (``make lint`` runs it).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_PACKAGE = Path("lendgate") / "v1"
COMMITTED = ROOT / "python" / OUT_PACKAGE


def generate(out_root: Path) -> Path:
    """Run protoc (from grpcio-tools) into ``out_root``; return the generated package dir."""
    protos = sorted(str(p) for p in (PROTO_DIR / OUT_PACKAGE).glob("*.proto"))
    if not protos:
        sys.exit(f"no .proto files under {PROTO_DIR / OUT_PACKAGE}")
    well_known = Path(protoc.__file__).parent / "_proto"
    venv_bin = Path(sys.executable).parent
    args = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--plugin=protoc-gen-mypy={venv_bin / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={venv_bin / 'protoc-gen-mypy_grpc'}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *protos,
    ]
    # A child process, so the plugins' chatter is shown only when something failed.
    result = subprocess.run(args, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        sys.exit(f"protoc failed:\n{result.stdout}{result.stderr}")
    package = out_root / OUT_PACKAGE
    (package / "__init__.py").write_text('"""Generated from proto/lendgate/v1 — do not edit."""\n')
    return package


def main() -> None:
    """Generate into the package, or with ``--check`` fail when the committed code drifted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed code is stale")
    check = parser.parse_args().check
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        if check:
            cmp = filecmp.dircmp(fresh, COMMITTED, ignore=["__pycache__"])
            stale = cmp.left_only + cmp.right_only + cmp.diff_files
            if stale:
                sys.exit(f"generated code is stale ({', '.join(sorted(stale))}): run `make proto`")
            return
        shutil.rmtree(COMMITTED, ignore_errors=True)
        shutil.copytree(fresh, COMMITTED)
    print(f"generated {COMMITTED.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

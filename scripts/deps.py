"""Print the Python dependencies declared in pyproject.toml, one per line.

The Makefile installs them into ``.venv`` before maturin builds the extension, so the
dependency list lives in exactly one place.
"""

import sys
import tomllib
from pathlib import Path


def main() -> None:
    """Print runtime dependencies plus the extras named on the command line."""
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    deps = list(project["dependencies"])
    for extra in sys.argv[1:]:
        deps += project["optional-dependencies"][extra]
    print("\n".join(deps))


if __name__ == "__main__":
    main()

"""The README's Python example runs as written against a real server."""

import contextlib
import io
import re
from pathlib import Path

from tests.conftest import ServerProcess

README = Path(__file__).resolve().parent.parent / "README.md"


def test_python_example_reaches_the_server(server: ServerProcess) -> None:
    (example,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    code = example.replace("127.0.0.1:50051", server.address)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    # A real report from the default rule pack.
    assert re.fullmatch(r"\d+ ZONE_(BLACK|GREY)\n", out.getvalue()), out.getvalue()

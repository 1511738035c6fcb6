"""The README's code blocks run as written (in a scratch folder), so the tour cannot rot."""

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.slow
def test_readme_tour_runs(tmp_path, capsys):
    blocks = _blocks()
    assert len(blocks) >= 6
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        namespace: dict = {}
        for i, code in enumerate(blocks):
            try:
                exec(compile(code, f"README block {i + 1}", "exec"), namespace)
            except Exception as e:  # name the block that broke
                raise AssertionError(f"README python block {i + 1} failed: {type(e).__name__}: {e}") from e
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "[53215, 13304, 3326, 832, 208, 52]" in out
    assert "torch.Size([2, 2000, 3])" in out

import subprocess
import sys

import pytest

from meshkit import __version__
from meshkit.cli import main
from meshkit.io import write_mesh


def test_version():
    out = subprocess.run([sys.executable, "-m", "meshkit.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout


def test_info(tmp_path, small_face, capsys):
    p = write_mesh(tmp_path / "face.ply", *small_face)
    assert main(["info", str(p)]) == 0
    out = capsys.readouterr().out
    assert "vertices      2000" in out
    assert "components    1" in out
    assert "boundary      1 (" in out
    assert "manifold      yes" in out


def test_info_bad_file_is_one_line_error(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope.ply")]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_small_runs_end_to_end(tmp_path):
    assert main(["demo", "--small", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "template.ply").exists()

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


def test_hierarchy_command_writes_everything(tmp_path, small_face, capsys):
    import pickle

    import sampling

    p = write_mesh(tmp_path / "face.ply", *small_face)
    out = tmp_path / "h" / "hier.npz"
    code = main(["hierarchy", str(p), "--factors", "4", "4", "--out", str(out), "--export", "spiralnet",
                 "--export", "neural3dmm", "--preview", str(tmp_path / "levels.png")])
    assert code == 0
    text = capsys.readouterr().out
    assert "round-trip" in text and "500" in text
    h = sampling.load(out, template=small_face)
    assert h.n_vertices == [2000, 500, 125]
    with open(out.parent / "transform.pkl", "rb") as fh:
        assert len(pickle.load(fh)["down_transform"]) == 2
    from PIL import Image

    img = Image.open(tmp_path / "levels.png")
    assert img.size[0] == 3 * 256  # one tile per level


def test_hierarchy_command_bad_factor_is_one_line_error(tmp_path, small_face, capsys):
    p = write_mesh(tmp_path / "face.ply", *small_face)
    assert main(["hierarchy", str(p), "--factors", "0.5", "--out", str(tmp_path / "h.npz")]) == 2
    assert "factors[0]" in capsys.readouterr().err

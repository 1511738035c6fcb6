import re
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


def test_info_reports_orientation(tmp_path, small_face, capsys):
    v, f = small_face
    assert main(["info", str(write_mesh(tmp_path / "ccw.ply", v, f))]) == 0
    out = capsys.readouterr().out
    assert "orientation   consistent" in out and "orient_outward" not in out
    assert main(["info", str(write_mesh(tmp_path / "cw.ply", v, f[:, ::-1]))]) == 0
    assert "orient_outward" in capsys.readouterr().out  # inward: the line names the fix


@pytest.mark.parametrize("mode", ["colour", "normals"])
def test_render_of_a_clockwise_mesh_warns_and_matches_the_outward_render(tmp_path, small_face, mode, capsys):
    """A user's own clockwise mesh (such as a BFM triangle list as stored) never renders dark
    silently: one warning line naming the fix, and the picture of the re-wound mesh."""
    import numpy as np
    from PIL import Image

    v, f = small_face
    imgs = []
    for name, faces in (("ccw", f), ("cw", f[:, ::-1])):
        out = tmp_path / f"{name}.png"
        assert main(["render", str(write_mesh(tmp_path / f"{name}.ply", v, faces)), "--mode", mode, "--size", "64",
                     "--out", str(out)]) == 0
        err = capsys.readouterr().err
        assert ("orient_outward" in err and len(err.strip().splitlines()) == 1) if name == "cw" else err == ""
        imgs.append(np.asarray(Image.open(out)).astype(int))
    # the same picture up to rounding (shading two-sided / normals of the re-wound faces)
    assert np.abs(imgs[0] - imgs[1]).max() <= 1


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


# ---------------------------------------------------------------------------------------------
# the dispatcher: one table of command modules (the 'meshkit.commands' entry points)


def test_command_table_is_the_entry_point_group():
    from importlib.metadata import entry_points

    from meshkit import cli

    eps = {ep.name: ep.value for ep in entry_points(group=cli.GROUP)}
    assert eps == {"core": "meshkit.commands", "sampling": "sampling.cli", "bfm": "bfm.cli"}
    assert [m.__name__ for m in cli.command_modules()] == ["meshkit.commands", "bfm.cli", "sampling.cli"]


def test_each_package_owns_its_subcommands():
    import argparse

    import bfm.cli
    import sampling.cli
    from meshkit import commands

    def names(module):
        sub = argparse.ArgumentParser().add_subparsers()
        module.add_commands(sub)
        return list(sub.choices)

    assert names(commands) == ["info", "demo", "spiral", "decimate", "render"]
    assert names(sampling.cli) == ["hierarchy"]
    assert names(bfm.cli) == ["bfm", "preprocess-300wlp"]
    help_text = subprocess.run([sys.executable, "-m", "meshkit.cli", "--help"], capture_output=True, text=True).stdout
    listed = re.findall(r"^    (\S+)", help_text, flags=re.MULTILINE)  # the subcommand column, in help order
    assert listed == ["info", "demo", "spiral", "decimate", "render", "bfm", "preprocess-300wlp", "hierarchy"]


def test_demo_steps_run_core_then_sampling_then_bfm():
    from meshkit import cli

    assert [s.__module__ + "." + s.__name__ for s in cli.demo_steps()] == [
        "meshkit.commands._demo_render", "sampling.cli._demo_hierarchy", "bfm.cli._demo_300wlp", "bfm.cli._demo_bfm"]


def test_empty_command_table_is_one_line_error(monkeypatch, capsys):
    from meshkit import cli

    monkeypatch.setattr(cli, "entry_points", lambda group: [])
    assert main(["info", "x.ply"]) == 2
    err = capsys.readouterr().err
    assert "no 'meshkit.commands' entry points" in err and "Traceback" not in err


def test_meshkit_imports_nothing_from_bfm_or_sampling():
    """Statically (every import statement of the meshkit package) and at run time (loading the core
    command module and the synthetic template pulls in neither package)."""
    import ast
    from pathlib import Path

    import meshkit

    for path in Path(meshkit.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods = [node.module or ""]
            else:
                continue
            assert not any(m.split(".")[0] in ("bfm", "sampling") for m in mods), f"{path}: imports {mods}"
    code = ("import sys, meshkit, meshkit.commands, meshkit.render, meshkit.synthetic; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('bfm', 'sampling')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_installed_meshkit_executable_dispatches():
    from pathlib import Path

    exe = Path(sys.executable).parent / "meshkit"
    if not exe.exists():
        pytest.skip(f"no meshkit executable beside {sys.executable}")
    out = subprocess.run([str(exe), "bfm", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "reconstruct" in out.stdout and "convert" in out.stdout

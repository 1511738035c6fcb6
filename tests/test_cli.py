import re
import subprocess
import sys

import pytest
import trimesh

from meshkit import __version__
from meshkit.cli import main
from meshkit.io import write_mesh
from tests._helpers import absolute_imports


def test_version():
    out = subprocess.run([sys.executable, "-m", "meshkit.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout


def test_info(tmp_path, small_face, capsys):
    p = write_mesh(tmp_path / "face.ply", *small_face)
    assert main(["info", str(p)]) == 0
    out = capsys.readouterr().out
    assert "vertices      2000" in out
    assert "components    1" in out
    # boundary loops and their lengths from an independent reference: trimesh's outline (each
    # closed path lists its first vertex again at the end)
    outline = trimesh.Trimesh(*small_face, process=False).outline().entities
    lengths = sorted(len(e.points) - 1 for e in outline)
    line = next(x for x in out.splitlines() if x.startswith("boundary"))
    assert line.startswith(f"boundary      {len(outline)} (")
    assert sorted(int(x) for x in line.split("lengths ")[1].rstrip(")").split(", ")) == lengths
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

    assert names(commands) == ["info", "demo", "spiral", "decimate", "render", "uv", "warmup"]
    assert names(sampling.cli) == ["hierarchy"]
    assert names(bfm.cli) == ["bfm", "preprocess-300wlp"]
    help_text = subprocess.run([sys.executable, "-m", "meshkit.cli", "--help"], capture_output=True, text=True).stdout
    listed = re.findall(r"^    (\S+)", help_text, flags=re.MULTILINE)  # the subcommand column, in help order
    assert listed == ["info", "demo", "spiral", "decimate", "render", "uv", "warmup", "bfm", "preprocess-300wlp",
                      "hierarchy"]


def test_demo_steps_run_core_then_sampling_then_bfm():
    from meshkit import cli

    assert [s.__module__ + "." + s.__name__ for s in cli.demo_steps()] == [
        "meshkit.commands._demo_render", "meshkit.commands._demo_uv", "sampling.cli._demo_hierarchy",
        "bfm.cli._demo_300wlp", "bfm.cli._demo_bfm"]


def test_empty_command_table_is_one_line_error(monkeypatch, capsys):
    from meshkit import cli

    monkeypatch.setattr(cli, "entry_points", lambda group: [])
    assert main(["info", "x.ply"]) == 2
    err = capsys.readouterr().err
    assert "no 'meshkit.commands' entry points" in err and "Traceback" not in err


def test_meshkit_imports_nothing_from_bfm_or_sampling():
    """Statically (every import statement of the meshkit package) and at run time (loading the core
    command module and the synthetic template pulls in neither package)."""
    from pathlib import Path

    import meshkit

    for path in Path(meshkit.__file__).parent.rglob("*.py"):
        for line, mods in absolute_imports(path):
            assert not any(m.split(".")[0] in ("bfm", "sampling") for m in mods), f"{path}:{line}: imports {mods}"
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


FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures" / "spirals"


@pytest.mark.parametrize(("length", "dilation"), [(9, 1), (12, 2)])
def test_spiral_style_spiralnet_equals_spiralnet_code(tmp_path, length, dilation):
    """`meshkit spiral --style spiralnet++` writes what SpiralNet++'s own extract_spirals computed (fixture)."""
    import numpy as np

    ref = np.load(FIXTURES / "face.npz")
    mesh = write_mesh(tmp_path / "face.ply", ref["vertices"], ref["faces"])
    out = tmp_path / "s.npy"
    assert main(["spiral", str(mesh), "--style", "spiralnet++", "--length", str(length), "--dilation", str(dilation),
                 "--out", str(out)]) == 0
    assert np.array_equal(np.load(out), ref[f"spiralnet_L{length}_d{dilation}"])


def test_hierarchy_exports_what_neural3dmm_reads(tmp_path, small_face):
    """`--export neural3dmm` writes F for levels 1..n (Neural3DMM's get_adj_trigs indexes F[i] with level i + 1's
    mesh), the template OBJ, and its spirals when step sizes are given; `--export spiralnet` adds spirals."""
    import pickle

    import numpy as np

    import sampling

    tpl = write_mesh(tmp_path / "t.ply", *small_face)
    out = tmp_path / "h.npz"
    assert main(["hierarchy", str(tpl), "--factors", "4", "4", "--out", str(out), "--export", "neural3dmm",
                 "--export", "spiralnet", "--neural3dmm-step-sizes", "1", "1", "1"]) == 0
    h = sampling.load(out)
    with open(tmp_path / "downsampling_matrices.pkl", "rb") as fh:
        d = pickle.load(fh, encoding="latin1")
    assert [len(f) for f in d["F"]] == [len(lv.faces) for lv in h.levels[1:]]
    assert [s.shape[1] for s in d["spirals"]] == [n + 1 for n in h.n_vertices]  # + Neural3DMM's dummy vertex
    assert (tmp_path / "template.obj").is_file()
    with open(tmp_path / "transform.pkl", "rb") as fh:
        t = pickle.load(fh, encoding="latin1")
    assert [len(s) for s in t["spirals"]] == h.n_vertices[:-1]
    assert all(np.all(s[:, 0] == np.arange(len(s))) for s in t["spirals"])  # every spiral starts at its vertex


# ---------------------------------------------------------------------------------------------
# issue #16: output paths checked before any work, images by extension, optional imports, progress

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


@pytest.mark.parametrize("name, magic", [("x.jpg", JPEG_MAGIC), ("x.JPEG", JPEG_MAGIC), ("x.png", PNG_MAGIC)])
def test_render_writes_the_format_its_extension_names(tmp_path, small_face, name, magic):
    from PIL import Image

    write_mesh(tmp_path / "f.ply", *small_face)
    out = tmp_path / name
    assert main(["render", str(tmp_path / "f.ply"), "--size", "64", "--out", str(out)]) == 0
    assert out.read_bytes().startswith(magic)
    with Image.open(out) as im:
        assert im.size == (64, 64) and im.format == ("PNG" if magic == PNG_MAGIC else "JPEG")


def test_render_refuses_other_extensions_before_reading_the_mesh(tmp_path, small_face, capsys, monkeypatch):
    import meshkit.io

    write_mesh(tmp_path / "f.ply", *small_face)
    monkeypatch.setattr(meshkit.io, "read_mesh", lambda *a, **k: pytest.fail("read the mesh before checking --out"))
    assert main(["render", str(tmp_path / "f.ply"), "--out", str(tmp_path / "x.bmp")]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and ".png, .jpg, .jpeg" in err and "'x.bmp'" in err
    assert not (tmp_path / "x.bmp").exists()


def test_save_image_by_extension(tmp_path):
    import numpy as np

    from meshkit.render import save_image

    img = np.linspace(0, 1, 16 * 16 * 3).reshape(16, 16, 3)
    assert save_image(tmp_path / "a.jpeg", img, quality=80).read_bytes().startswith(JPEG_MAGIC)
    assert save_image(tmp_path / "a.png", img).read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match=r"path: expected a file name ending in \.png, \.jpg, \.jpeg, got 'a\.tif'"):
        save_image(tmp_path / "a.tif", img)
    with pytest.raises(ValueError, match="JPEG holds grey or RGB"):
        save_image(tmp_path / "b.jpg", np.zeros((4, 4, 4)))
    with pytest.raises(ValueError, match="quality"):
        save_image(tmp_path / "c.jpg", img, quality=0)
    assert not (tmp_path / "a.tif").exists() and not (tmp_path / "b.jpg").exists()


def test_hierarchy_refuses_pkl_in_well_under_a_second_before_any_build(tmp_path, small_face, capsys, monkeypatch):
    import time

    import sampling

    write_mesh(tmp_path / "t.ply", *small_face)
    monkeypatch.setattr(sampling, "build_hierarchy", lambda *a, **k: pytest.fail("built before checking --out"))
    t0 = time.perf_counter()
    assert main(["hierarchy", str(tmp_path / "t.ply"), "--out", str(tmp_path / "h.pkl")]) == 2
    assert time.perf_counter() - t0 < 0.5
    err = capsys.readouterr().err
    assert "--out: expected a file name ending in .npz, got 'h.pkl'" in err
    for bad, opt in ((["--preview", str(tmp_path / "p.jpg")], "--preview"),
                     (["--cache-dir", str(tmp_path / "t.ply")], "--cache-dir")):
        assert main(["hierarchy", str(tmp_path / "t.ply"), "--out", str(tmp_path / "h.npz"), *bad]) == 2
        assert opt in capsys.readouterr().err


def test_preprocess_refuses_a_missing_root_before_building_the_model(tmp_path, capsys, monkeypatch):
    import time

    import bfm.synthetic

    monkeypatch.setattr(bfm.synthetic, "synthetic_model", lambda *a, **k: pytest.fail("model built before the check"))
    t0 = time.perf_counter()
    code = main(["preprocess-300wlp", str(tmp_path / "nope"), "--synthetic-model", "--out", str(tmp_path / "s.zarr")])
    assert code == 2 and time.perf_counter() - t0 < 0.5
    err = capsys.readouterr().err
    assert "root: no such folder" in err and "nope" in err
    (tmp_path / "root").mkdir()
    assert main(["preprocess-300wlp", str(tmp_path / "root"), "--model", str(tmp_path / "bfm.mat"),
                 "--out", str(tmp_path / "s.zarr")]) == 2
    assert "--model: no such file" in capsys.readouterr().err


def _bad_outputs(tmp_path, mesh, png, uv):
    """(argv, option named in the error) for each subcommand given an output it does not write."""
    d = str(tmp_path)
    return [
        (["spiral", mesh, "--out", f"{d}/s.txt"], "--out"),
        (["decimate", mesh, f"{d}/c.xyz"], "out"),
        (["decimate", mesh, f"{d}/c.ply", "--matrices", f"{d}/m.mat"], "--matrices"),
        (["render", mesh, "--out", f"{d}/r.gif"], "--out"),
        (["uv", "position-map", mesh, "--uv", uv, "--out", f"{d}/p.tif"], "--out"),
        (["uv", "texture", png, mesh, "--uv", uv, "--out", f"{d}/t.npy"], "--out"),
        (["uv", "export", mesh, "--uv", uv, "--texture", png, "--out", f"{d}/e.ply"], "--out"),
        (["hierarchy", mesh, "--out", f"{d}/h.pkl"], "--out"),
        (["bfm", "reconstruct", uv, "--out", f"{d}/r.txt"], "--out"),
        (["bfm", "convert", uv, f"{d}/m.json"], "output"),
        (["demo", "--out", mesh], "--out"),
        (["preprocess-300wlp", d, "--synthetic-model", "--out", mesh], "--out"),
        # a folder that cannot be created: its parent is a file
        (["render", mesh, "--out", f"{mesh}/r.png"], "--out"),
    ]


def test_every_subcommand_checks_its_output_first(tmp_path, small_face, capsys):
    import time

    import numpy as np

    from meshkit.render import save_image

    mesh = str(write_mesh(tmp_path / "f.ply", *small_face))
    png = str(save_image(tmp_path / "i.png", np.zeros((8, 8, 3))))
    uv = str(tmp_path / "uv.npy")
    np.save(uv, np.zeros((len(small_face[0]), 2)))
    before = sorted(p.name for p in tmp_path.iterdir())
    for argv, option in _bad_outputs(tmp_path, mesh, png, uv):
        t0 = time.perf_counter()
        assert main(argv) == 2, argv
        assert time.perf_counter() - t0 < 0.5, argv
        err = capsys.readouterr().err
        assert f": error: {option}: " in err and "Traceback" not in err, (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


@pytest.mark.skipif(__import__("os").geteuid() == 0, reason="root writes anywhere")
def test_unwritable_output_folder_is_refused(tmp_path, small_face, capsys):
    mesh = str(write_mesh(tmp_path / "f.ply", *small_face))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["render", mesh, "--out", str(ro / "sub" / "r.png")]) == 2
        assert "is not writable" in capsys.readouterr().err
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("module, extra", [("matplotlib", "meshkit[viz]"), ("pyvista", "meshkit[viz]"),
                                           ("torch", "meshkit[torch]"), ("dask.distributed", "meshkit[dist]")])
def test_require_names_the_extra_for_a_missing_module(monkeypatch, module, extra):
    import sys

    from meshkit._optional import require

    top = module.split(".")[0]
    for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, top, None)  # makes `import top` (and its submodules) raise ImportError
    with pytest.raises(ImportError) as info:
        require(module, "the feature")
    msg = str(info.value)
    assert msg.startswith(f"the feature needs {module}, which is not installed: install it with ")
    assert f'pip install "{extra}"' in msg


def test_plot_ced_without_matplotlib_names_the_viz_extra(tmp_path, monkeypatch):
    import sys

    import numpy as np

    from meshkit.metrics import plot_ced

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'metrics\.plot_ced needs matplotlib.*pip install "meshkit\[viz\]"'):
        plot_ced({"a": np.array([0.01, 0.02])}, tmp_path / "ced.png")


def test_no_optional_import_bypasses_require():
    """Every import of an optional package in meshkit, bfm and sampling goes through _optional.require
    (module-level imports inside meshkit.nn come after nn/__init__'s require("torch"))."""
    from pathlib import Path

    import meshkit

    optional = {"torch", "pyvista", "matplotlib", "dask", "distributed", "xarray"}
    root = Path(meshkit.__file__).parent.parent
    for pkg in ("meshkit", "bfm", "sampling"):
        for path in (root / pkg).rglob("*.py"):
            for line, mods in absolute_imports(path):
                if any(m.split(".")[0] in optional for m in mods):
                    # allowed: meshkit/nn (guarded by its __init__) and code that called require first
                    guarded = path.parent.name == "nn" or "require(" in path.read_text()
                    assert guarded, f"{path}:{line}: imports {mods} without _optional.require"


def test_synthetic_300wlp_writer_shows_progress(tmp_path, capsys):
    from bfm.synthetic import small_model
    from bfm.synthetic_300wlp import write_synthetic_300wlp

    truth = write_synthetic_300wlp(tmp_path, small_model(), n_per_subset=1, subsets=("AFW",), image_size=64,
                                   progress=True)
    err = capsys.readouterr().err
    assert len(truth) == 2 and "synthetic 300W-LP" in err and "2/2" in err
    write_synthetic_300wlp(tmp_path / "quiet", small_model(), n_per_subset=1, subsets=("AFW",), image_size=64)
    assert "synthetic 300W-LP" not in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# issue #18: meshkit uv position-map | texture | export, against closed forms


def _uv_setup(tmp_path, small_face):
    import numpy as np

    from meshkit.synthetic import template_uv

    v, f = small_face
    uv = template_uv(v)
    mesh = write_mesh(tmp_path / "f.ply", v, f)
    np.save(tmp_path / "uv.npy", uv)
    return v, f, uv, str(mesh), str(tmp_path / "uv.npy")


def test_uv_position_map_is_affine_in_the_texel_for_a_planar_layout(tmp_path, small_face, capsys):
    """With u, v affine in x, y (template_uv), a covered texel (r, c) holds x = lo_x + u (hi_x - lo_x),
    y = lo_y + v (hi_y - lo_y) with u = c / (size - 1), v = 1 - r / (size - 1) (up to the rasterizer's
    fixed-point snapping)."""
    import numpy as np
    import scipy.io

    v, f, uv, mesh, _ = _uv_setup(tmp_path, small_face)
    scipy.io.savemat(str(tmp_path / "BFM_UV.mat"), {"UV": uv})  # the real layout, read by the core too
    out = tmp_path / "pm.npy"
    assert main(["uv", "position-map", mesh, "--uv", str(tmp_path / "BFM_UV.mat"), "--size", "64",
                 "--out", str(out)]) == 0
    pm = np.load(out)
    assert pm.shape == (64, 64, 3) and pm.dtype == np.float32
    covered = np.any(pm != 0, axis=2)
    assert covered.mean() > 0.5
    r, c = np.nonzero(covered)
    lo, hi = v.min(0), v.max(0)
    expect_x = lo[0] + c / 63 * (hi[0] - lo[0])
    expect_y = lo[1] + (1 - r / 63) * (hi[1] - lo[1])
    # the rasterizer snaps UV vertices to 1/256 of a texel: one step of that grid, in model units
    step = (hi - lo) / 63 / 256
    np.testing.assert_allclose(pm[r, c, 0], expect_x, atol=step[0])
    np.testing.assert_allclose(pm[r, c, 1], expect_y, atol=step[1])
    assert main(["uv", "position-map", mesh, "--uv", str(tmp_path / "uv.npy"), "--size", "64",
                 "--out", str(tmp_path / "pm.jpg")]) == 0
    assert (tmp_path / "pm.jpg").read_bytes().startswith(JPEG_MAGIC)


def test_uv_texture_of_a_gradient_photo_is_affine_in_the_texel(tmp_path, small_face):
    """A photo whose red channel is (x + 0.5) / W at pixel column x, seen by an orthographic camera:
    the texture's red at texel (r, c) is the image x of the texel's surface point over W, which is
    affine in u (frame_vertices is affine, template_uv is affine)."""
    import numpy as np
    from PIL import Image

    from meshkit.render import frame_vertices, save_image

    v, f, uv, _, uv_file = _uv_setup(tmp_path, small_face)
    w = 200
    vi = frame_vertices(v, w, w)
    write_mesh(tmp_path / "image_space.ply", vi, f)
    photo = np.zeros((w, w, 3))
    photo[..., 0] = (np.arange(w) + 0.5) / w
    photo[..., 1] = 0.5
    save_image(tmp_path / "photo.png", photo)
    assert main(["uv", "texture", str(tmp_path / "photo.png"), str(tmp_path / "image_space.ply"), "--uv", uv_file,
                 "--size", "64", "--out", str(tmp_path / "tex.png")]) == 0
    with Image.open(tmp_path / "tex.png") as im:
        assert im.mode == "RGBA"
        tex = np.asarray(im).astype(float) / 255
    seen = tex[..., 3] > 0.5
    assert seen.mean() > 0.4
    r, c = np.nonzero(seen)
    # image x of a point is affine in world x: fit it on two vertices, then x_world from u
    i, j = np.argmin(v[:, 0]), np.argmax(v[:, 0])
    a = (vi[j, 0] - vi[i, 0]) / (v[j, 0] - v[i, 0])
    b = vi[i, 0] - a * v[i, 0]
    lo, hi = v[:, 0].min(), v[:, 0].max()
    x_img = a * (lo + c / 63 * (hi - lo)) + b
    np.testing.assert_allclose(tex[r, c, 0], x_img / w, atol=1.5 / 255)  # 8-bit photo and texture
    np.testing.assert_allclose(tex[r, c, 1], 0.5, atol=1 / 255)


def test_uv_export_writes_texel_aligned_uvs(tmp_path, small_face):
    """The written UVs are the map's shifted to texture-file texel centres: (uv (n - 1) + 0.5) / n."""
    import numpy as np
    from PIL import Image

    from meshkit.io import read_mesh
    from meshkit.render import save_image

    v, f, uv, mesh, uv_file = _uv_setup(tmp_path, small_face)
    texture = np.random.default_rng(0).uniform(0, 1, (32, 48, 3))
    save_image(tmp_path / "tex.png", texture)
    for name in ("face.obj", "face.glb"):
        assert main(["uv", "export", mesh, "--uv", uv_file, "--texture", str(tmp_path / "tex.png"),
                     "--out", str(tmp_path / name)]) == 0
        m, back = read_mesh(tmp_path / name, return_uv=True)
        expect = (uv * np.array([47.0, 31.0]) + 0.5) / np.array([48.0, 32.0])
        np.testing.assert_allclose(back, expect, atol=1e-6 if name.endswith("glb") else 1e-12)
        np.testing.assert_allclose(m.vertices, v, rtol=1e-6)
    with Image.open(tmp_path / "face.png") as im:  # the texture written beside the .obj
        np.testing.assert_array_equal(np.asarray(im), np.rint(texture * 255).astype(np.uint8))


def test_uv_commands_refuse_a_layout_of_the_wrong_size(tmp_path, small_face, capsys):
    import numpy as np

    _, _, _, mesh, _ = _uv_setup(tmp_path, small_face)
    np.save(tmp_path / "short.npy", np.zeros((10, 2)))
    assert main(["uv", "position-map", mesh, "--uv", str(tmp_path / "short.npy"), "--out",
                 str(tmp_path / "pm.npy")]) == 2
    assert "one row per vertex" in capsys.readouterr().err
    import scipy.io

    scipy.io.savemat(str(tmp_path / "k.mat"), {"uv_coords": np.zeros((10, 2))})
    assert main(["uv", "position-map", mesh, "--uv", str(tmp_path / "k.mat"), "--out", str(tmp_path / "pm.npy")]) == 2
    assert "--uv: expected the variable 'UV'" in capsys.readouterr().err

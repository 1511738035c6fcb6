"""300W-LP preprocessing: layout, geometry of the crop, image/mesh alignment, store modes,
failure reporting, resume after a hard kill, Dask, CLI.

References: the pose is recomputed here with face3d's own ``angle2matrix_3ddfa`` matrices written
out by hand (Rx, Ry, Rz with face3d's signs, R = Rx Ry Rz, image = s V R^T + t, y -> h - y - 1) and
the crop with face3d's rule (box centre, 1.5 x mean side, corners -> 0 and S - 1), in float64
numpy, independent of bfm.pose / bfm.w300lp; image alignment is checked by re-rendering the stored
meshes with meshkit's rasterizer and comparing with the stored crops (a crop/vertex offset of one
pixel shows up); the real-file facts (keys, shapes, 450 x 450 JPEG, landmarks/ layout) are those
of TFDS ``the300w_lp`` and the face3d / 3DDFA-style readers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import zarr
from PIL import Image

from bfm import w300lp
from bfm.synthetic import small_model
from bfm.synthetic_300wlp import vertex_pattern_colors, write_synthetic_300wlp

SIZE = 48
IMG = 160
ARRAYS = ("images", "vertices", "landmarks2d", "landmarks3d", "pose", "pose_para", "shape_para", "exp_para", "crop",
          "source_size", "status", "ids")


@pytest.fixture(scope="session")
def model():
    return small_model()


@pytest.fixture(scope="session")
def tree(tmp_path_factory, model):
    root = tmp_path_factory.mktemp("w300lp") / "300W_LP"
    truth = write_synthetic_300wlp(root, model, n_per_subset=2, image_size=IMG, face_px=70, seed=1, colors="pattern",
                                   style="plain")  # clean renders: the alignment test re-renders them
    return root, truth


@pytest.fixture(scope="session")
def broken_tree(tmp_path_factory, tree):
    """The tree with a corrupt .mat, a missing image, a wrong-shape Shape_Para and a missing pt2d key."""
    root = tmp_path_factory.mktemp("broken") / "300W_LP"
    shutil.copytree(tree[0], root)
    ids = sorted(tree[1])
    bad = {ids[1]: "corrupt .mat", ids[6]: "missing image", ids[9]: "wrong shape", ids[14]: "missing key"}
    (root / f"{ids[1]}.mat").write_bytes(b"MATLAB 5.0 MAT-file garbage" + bytes(range(256)) * 3)
    (root / f"{ids[6]}.jpg").unlink()
    m = scipy.io.loadmat(str(root / f"{ids[9]}.mat"))
    m["Shape_Para"] = np.zeros((199, 2))
    scipy.io.savemat(str(root / f"{ids[9]}.mat"), {k: v for k, v in m.items() if not k.startswith("__")})
    m = scipy.io.loadmat(str(root / f"{ids[14]}.mat"))
    scipy.io.savemat(str(root / f"{ids[14]}.mat"), {k: v for k, v in m.items() if not k.startswith("__") and k != "pt2d"})
    return root, bad


@pytest.fixture(scope="session")
def store(tmp_path_factory, tree, model):
    out = tmp_path_factory.mktemp("store") / "s.zarr"
    summary = w300lp.preprocess(tree[0], out, model=model, size=SIZE, workers=1, block_size=4, progress=False)
    return out, summary


def _face3d_pose(v, pose_para, h):
    """face3d transform_3ddfa + the 300W-LP y flip, float64, written from face3d's matrices."""
    x, y, z = pose_para[:3]
    rx = np.array([[1, 0, 0], [0, np.cos(x), np.sin(x)], [0, -np.sin(x), np.cos(x)]])
    ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(z), np.sin(z), 0], [-np.sin(z), np.cos(z), 0], [0, 0, 1]])
    r = rx @ ry @ rz
    out = pose_para[6] * v @ r.T + pose_para[3:6]
    out[:, 1] = h - out[:, 1] - 1
    return out


def _face3d_crop(pt2d, size, margin=1.5):
    left, right = pt2d[:, 0].min(), pt2d[:, 0].max()
    top, bottom = pt2d[:, 1].min(), pt2d[:, 1].max()
    center = np.array([right - (right - left) / 2.0, bottom - (bottom - top) / 2.0])
    side = (right - left + bottom - top) / 2.0 * margin
    corner = center - side / 2.0
    s = (size - 1) / side
    return s, corner


def _arrays(path):
    g = zarr.open_group(str(path), mode="r")
    return {k: g[k][:] for k in ARRAYS if k in g}, dict(g.attrs)


def _done_blocks(path, block_size):
    """Blocks whose status chunk is written (every row non-zero)."""
    status = zarr.open_group(str(path), mode="r", use_consolidated=False)["status"][:]
    return [b for b in range(0, len(status), block_size) if (status[b: b + block_size] != 0).all()]


def _assert_same_store(a, b, *, exact=True):
    (xa, attrs_a), (xb, attrs_b) = _arrays(a), _arrays(b)
    assert set(xa) == set(xb)
    for k in xa:
        if exact or xa[k].dtype.kind not in "f":
            np.testing.assert_array_equal(xa[k], xb[k], err_msg=k)
        else:
            np.testing.assert_allclose(xa[k], xb[k], rtol=1e-5, atol=1e-3, err_msg=k)
    assert attrs_a["failures"] == attrs_b["failures"]
    assert attrs_a["config"] == attrs_b["config"]


# ---------------------------------------------------------------------------------------------
# layout


def test_synthetic_tree_has_the_real_layout(tmp_path, model):
    root = tmp_path / "300W_LP"
    truth = write_synthetic_300wlp(root, model, n_per_subset=1, seed=3)
    assert sorted({k.split("/")[0] for k in truth}) == ["AFW", "AFW_Flip", "HELEN", "HELEN_Flip", "IBUG", "IBUG_Flip",
                                                        "LFPW", "LFPW_Flip"]
    expected = {"Pose_Para": (1, 7), "Shape_Para": (199, 1), "Exp_Para": (29, 1), "Color_Para": (1, 7),
                "Illum_Para": (1, 10), "Tex_Para": (199, 1), "pt2d": (2, 68), "roi": (1, 4)}
    for sid in truth:
        mat = scipy.io.loadmat(str(root / f"{sid}.mat"))
        assert {k: mat[k].shape for k in expected} == expected
        # dtypes of the real files (../shared/REAL_FILES.md; tests/test_real_files.py checks them all)
        assert {k: mat[k].dtype for k in ("Pose_Para", "Shape_Para", "roi")} == {
            "Pose_Para": np.float32, "Shape_Para": np.float64, "roi": np.int16}
        with Image.open(root / f"{sid}.jpg") as im:
            assert im.format == "JPEG" and im.size == (450, 450) and im.mode == "RGB"
        folder, stem = sid.split("/")
        lm = root / "landmarks" / folder / f"{stem}_pts.mat"
        if folder.endswith("_Flip"):
            assert not lm.exists()
        else:
            d = scipy.io.loadmat(str(lm))
            assert d["pts_2d"].shape == (68, 2) and d["pts_3d"].shape == (68, 2)
            np.testing.assert_allclose(d["pts_2d"], mat["pt2d"].T)
    assert sorted(p.name for p in (root / "landmarks").iterdir()) == ["AFW", "HELEN", "IBUG", "LFPW"]
    # a flip is the mirrored pose: pitch kept, yaw and roll negated, tx -> w - 1 - tx
    sid = next(k for k in truth if k.startswith("AFW/"))
    p, q = truth[sid]["pose_para"], truth["AFW_Flip/" + sid.split("/")[1]]["pose_para"]
    np.testing.assert_allclose(q, [p[0], -p[1], -p[2], 449 - p[3], p[4], p[5], p[6]], rtol=1e-6)  # float32 in the file


def test_discover_sorted_with_flips_and_reports_orphans(tree, tmp_path):
    root, truth = tree
    samples = w300lp.discover(root)
    assert [s.id for s in samples] == sorted(truth)
    assert sum(s.flip for s in samples) == len(truth) // 2
    assert all(s.landmarks is not None for s in samples if not s.flip)
    assert len(w300lp.discover(root, flips=False)) == len(truth) // 2
    assert [s.id for s in w300lp.discover(root, subsets=["IBUG"])] == sorted(k for k in truth if k.startswith("IBUG"))
    with pytest.raises(FileNotFoundError, match="root"):
        w300lp.discover(tmp_path / "nope")
    with pytest.raises(ValueError, match="AFW"):
        w300lp.discover(tmp_path)


# ---------------------------------------------------------------------------------------------
# geometry


def test_vertices_match_independent_pose_and_crop(store, tree, model):
    out, summary = store
    _, truth = tree
    assert summary.processed == len(truth) and not summary.skipped
    g = zarr.open_group(str(out), mode="r")
    ids = list(g["ids"][:])
    assert ids == sorted(truth)
    verts, lm2, lm3 = g["vertices"][:], g["landmarks2d"][:], g["landmarks3d"][:]
    mean = model.mean.astype(np.float64).reshape(-1)
    for i, sid in enumerate(ids):
        t = truth[sid]
        flat = mean + model.shape_basis.astype(np.float64) @ t["shape_para"][: model.n_shape] \
            + model.expression_basis.astype(np.float64) @ t["exp_para"][: model.n_expression]
        img_v = _face3d_pose(flat.reshape(-1, 3), t["pose_para"], IMG)
        s, corner = _face3d_crop(t["pt2d"], SIZE)
        ref = np.empty_like(img_v)
        ref[:, :2] = s * (img_v[:, :2] - corner)
        ref[:, 2] = s * img_v[:, 2]
        ref[:, 2] -= ref[:, 2].min()
        np.testing.assert_allclose(verts[i], ref, atol=2e-3)
        # the check: the 68 landmark vertices land on pt2d (after the crop) within a pixel
        pt_crop = s * (t["pt2d"] - corner)
        assert np.abs(verts[i][model.landmarks, :2] - pt_crop).max() < 1.0
        np.testing.assert_allclose(lm2[i], pt_crop, atol=1e-3)
        np.testing.assert_array_equal(lm3[i], verts[i][model.landmarks])
        assert verts[i][:, 2].min() == 0.0
    np.testing.assert_allclose(g["pose"][:], np.array([truth[k]["pose_para"][:3] for k in ids]), atol=1e-6)


def test_a_landmark_drawn_by_the_rasterizer_lands_where_the_store_says(store, model):
    """One pixel convention: the rasterizer draws a stored landmark vertex on the pixel ``landmarks2d``
    names. Each landmark vertex is drawn as a hat function (1 at the vertex, 0 at the others,
    linear in between: the rasterizer's own interpolation); its brightest pixel is where the
    rasterizer put the vertex. With the rasterizer's old pixel centres at integer + 0.5 the
    brightest pixels sat half a pixel up-left of landmarks2d on average."""
    from meshkit.render import rasterize, render_colors

    g = zarr.open_group(str(store[0]), mode="r")
    assert "centred on x = c, y = r" in g.attrs["pixel_convention"]
    verts, lm2 = g["vertices"][:], g["landmarks2d"][:]
    hats = np.zeros((model.n_vertices, 68))
    hats[model.landmarks, np.arange(68)] = 1.0
    offsets = []
    for i in range(len(verts)):
        v = verts[i].astype(np.float64)
        img = render_colors(v, model.triangles, hats, SIZE, SIZE)
        face = rasterize(v, model.triangles, SIZE, SIZE).face_index
        for k in range(68):
            r, c = np.unravel_index(np.argmax(img[..., k]), img.shape[:2])
            if img[r, c, k] < 0.5 or model.landmarks[k] not in model.triangles[face[r, c]]:
                continue  # hidden (self-occluded), or on the rim where its own pixel centre is off the mesh
            offsets.append((c - lm2[i, k, 0], r - lm2[i, k, 1]))
    offsets = np.array(offsets)
    assert len(offsets) > 0.3 * 68 * len(verts)
    # the brightest pixel is the pixel containing the landmark (within half a pixel, up to the
    # slack of a hat function on a coarse mesh: on the real connectivity's valence-4 vertices the
    # hat is a diamond, so about 6 % of brightest pixels are the neighbour), and on average centred
    # on it, which is what tells the conventions apart (the old one: 0.5 px up-left on average)
    assert np.abs(offsets).max() <= 1.0
    assert (np.abs(offsets) <= 0.5 + 1e-6).all(axis=1).mean() > 0.85
    np.testing.assert_allclose(offsets.mean(axis=0), 0.0, atol=0.1)


def _render_like_writer(model, v, size):
    """The writer's shading (meshkit.render.render_shaded as synthetic_300wlp calls it) -> (rgb, covered)."""
    from meshkit.render import rasterize, render_shaded

    w = v.astype(np.float64)  # pixel indices: the rasterizer's own coordinates
    rgb = render_shaded(w, model.triangles, size, size, colors=vertex_pattern_colors(model), ambient=0.45, diffuse=0.55,
                        two_sided=True)
    return rgb, rasterize(w, model.triangles, size, size).mask


def test_crops_are_aligned_with_the_stored_meshes(store, model):
    """Re-render each stored mesh at the crop size: it matches the stored crop inside the face, and
    a one-pixel shift of the mesh matches clearly worse (the crop and the vertices share one map)."""
    from scipy.ndimage import binary_erosion

    g = zarr.open_group(str(store[0]), mode="r")
    images, verts = g["images"][:], g["vertices"][:].astype(np.float64)
    errs, shifted = [], []
    for img, v in zip(images, verts, strict=True):
        for dx, acc in ((0.0, errs), (1.0, shifted)):
            w = v.copy()
            w[:, 0] += dx
            rgb, covered = _render_like_writer(model, w, SIZE)
            mask = binary_erosion(covered, iterations=2)
            acc.append(np.abs(rgb[mask] - img[mask] / 255.0).mean())
    errs, shifted = np.array(errs), np.array(shifted)
    assert errs.max() < 0.05
    assert (shifted > 1.3 * errs).all()


def test_params_store_rebuilds_the_vertex_store(tmp_path, tree, model, store):
    out = tmp_path / "p.zarr"
    w300lp.preprocess(tree[0], out, model=model, size=SIZE, store="params", workers=1, block_size=4, progress=False)
    gp, gv = zarr.open_group(str(out), mode="r"), zarr.open_group(str(store[0]), mode="r")
    assert "vertices" not in gp
    for k in ("images", "landmarks2d", "landmarks3d", "crop", "pose_para", "shape_para", "exp_para", "ids", "status"):
        np.testing.assert_array_equal(gp[k][:], gv[k][:], err_msg=k)
    for i in range(gp["status"].shape[0]):
        v = w300lp.reconstruct_cropped(model, gp["shape_para"][i], gp["exp_para"][i], gp["pose_para"][i],
                                       gp["crop"][i], gp["source_size"][i][0])
        np.testing.assert_allclose(v, gv["vertices"][i], atol=2e-3)


def test_float16_vertices(tmp_path, tree, model, store):
    out = tmp_path / "h.zarr"
    w300lp.preprocess(tree[0], out, model=model, size=SIZE, vertex_dtype="float16", workers=1, block_size=4, progress=False)
    h = zarr.open_group(str(out), mode="r")["vertices"][:]
    f = zarr.open_group(str(store[0]), mode="r")["vertices"][:]
    assert h.dtype == np.float16
    np.testing.assert_allclose(h.astype(np.float32), f, rtol=2e-3, atol=2e-3)


def test_fewer_model_components_use_the_leading_ones(store, model):
    cfg = zarr.open_group(str(store[0]), mode="r").attrs["config"]
    assert (cfg["n_shape_used"], cfg["n_expression_used"]) == (model.n_shape, model.n_expression) == (40, 10)
    assert zarr.open_group(str(store[0]), mode="r")["shape_para"].shape[1] == 40


def test_model_with_components_equals_zero_trailing_coefficients(model):
    """The truncated model reconstructs what the full one does with the dropped coefficients at zero."""
    rng = np.random.default_rng(3)
    a, e = rng.normal(size=12) * model.shape_std[:12], rng.normal(size=4) * model.expression_std[:4]
    small = model.with_components(n_shape=12, n_expression=4)
    assert (small.n_shape, small.n_expression, small.n_vertices) == (12, 4, model.n_vertices)
    full = model.reconstruct(np.r_[a, np.zeros(model.n_shape - 12)], np.r_[e, np.zeros(model.n_expression - 4)])
    np.testing.assert_allclose(small.reconstruct(a, e), full, rtol=0, atol=1e-4 * np.abs(full).max())
    assert model.with_components() is model
    assert w300lp.model_token(small) != w300lp.model_token(model)
    with pytest.raises(ValueError, match="n_shape"):
        model.with_components(n_shape=model.n_shape + 1)
    with pytest.raises(TypeError, match="n_expression"):
        model.with_components(n_expression=2.0)


# ---------------------------------------------------------------------------------------------
# failures, resume, parallel


def test_corrupt_missing_and_wrong_shape_are_reported_and_skipped(tmp_path, broken_tree, tree, model, store):
    root, bad = broken_tree
    s = w300lp.preprocess(root, tmp_path / "b.zarr", model=model, size=SIZE, workers=1, block_size=4, progress=False)
    reasons = dict(s.skipped)
    assert set(reasons) == set(bad)
    for sid, what in bad.items():
        assert reasons[sid].startswith(what), (sid, reasons[sid])
    assert s.processed == len(tree[1]) - len(bad)
    g = zarr.open_group(str(tmp_path / "b.zarr"), mode="r")
    ids = list(g["ids"][:])
    status = g["status"][:]
    good = zarr.open_group(str(store[0]), mode="r")
    for i, sid in enumerate(ids):
        if sid in bad:
            assert status[i] == w300lp.STATUS_SKIPPED and not g["images"][i].any() and not g["vertices"][i].any()
        else:  # the other samples are unaffected
            assert status[i] == w300lp.STATUS_DONE
            np.testing.assert_array_equal(g["images"][i], good["images"][i])
    assert [tuple(f) for f in g.attrs["failures"]] == sorted(s.skipped)
    assert "skipped" in str(s) and "missing image" in str(s)


@pytest.mark.slow
def test_resume_after_a_hard_kill_gives_the_same_store(tmp_path, broken_tree, model):
    root = broken_tree[0]
    clean = tmp_path / "clean.zarr"  # the same command, uninterrupted
    w300lp.preprocess(root, clean, model=model, size=SIZE, workers=2, block_size=2, progress=False)
    killed = tmp_path / "killed.zarr"
    # the job's main process dies (os._exit, no cleanup) right after its second finished block: the
    # child wraps the local runner's block-completion callback
    code = f"""
import os
from bfm import w300lp
from bfm.synthetic import small_model
from bfm.w300lp import runners

run_local = runners.run_local

def run_local_then_die(workers, spec, out, tasks, opts, on_done):
    n_done = 0

    def on_done_then_die(result):
        nonlocal n_done
        on_done(result)
        n_done += 1
        if n_done == 2:
            os._exit(75)

    run_local(workers, spec, out, tasks, opts, on_done_then_die)

runners.run_local = run_local_then_die
w300lp.preprocess({str(root)!r}, {str(killed)!r}, model=small_model(), size={SIZE}, workers=2, block_size=2,
                  progress=False)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert r.returncode == 75, r.stderr[-2000:]
    done = _done_blocks(killed, 2)
    n_blocks = 8
    assert 2 <= len(done) < n_blocks  # killed mid-way
    assert "complete" not in zarr.open_group(str(killed), mode="r").attrs
    with pytest.warns(RuntimeWarning, match="took over the stale lock"):  # the dead job's
        s = w300lp.preprocess(root, killed, model=model, size=SIZE, workers=2, block_size=2, progress=False)
    assert s.blocks_resumed == len(done) and s.blocks_total == n_blocks
    _assert_same_store(killed, clean)
    # a finished store is a no-op to re-run
    s2 = w300lp.preprocess(root, killed, model=model, size=SIZE, workers=2, block_size=2, progress=False)
    assert s2.blocks_resumed == n_blocks
    _assert_same_store(killed, clean)


@pytest.mark.slow
def test_dask_local_cluster_writes_the_same_store(tmp_path, tree, model, store):
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "d.zarr"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        s = w300lp.preprocess(tree[0], out, model=model, size=SIZE, block_size=4, scheduler=cluster.scheduler_address,
                              progress=False)
    assert s.processed == len(tree[1])
    _assert_same_store(out, store[0], exact=False)
    np.testing.assert_array_equal(zarr.open_group(str(out), mode="r")["images"][:],
                                  zarr.open_group(str(store[0]), mode="r")["images"][:])


@pytest.mark.slow
def test_local_processes_write_the_same_store(tmp_path, tree, model, store):
    """Worker processes vs in-process: the same store up to float32 rounding of the GEMM (the
    workers run single-threaded BLAS, the in-process run multi-threaded; bit-identity is promised
    for the same command only)."""
    out = tmp_path / "l.zarr"
    w300lp.preprocess(tree[0], out, model=model, size=SIZE, block_size=4, workers=2, progress=False)
    _assert_same_store(out, store[0], exact=False)
    np.testing.assert_array_equal(zarr.open_group(str(out), mode="r")["images"][:],
                                  zarr.open_group(str(store[0]), mode="r")["images"][:])


def test_progress_is_array_data_and_lists_failures(tmp_path, broken_tree, model):
    """No marker files: the per-sample skip reasons and status are arrays; no temp files are left."""
    out = tmp_path / "m.zarr"
    w300lp.preprocess(broken_tree[0], out, model=model, size=SIZE, workers=1, block_size=4, progress=False)
    assert not (out / ".w300lp").exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".partial")]  # zarr's chunk temp files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.zarr"]  # no lock or .creating left beside it
    g = zarr.open_group(str(out), mode="r")
    reasons, ids, status = g["skip_reason"][:], g["ids"][:], g["status"][:]
    listed = {str(ids[i]): str(reasons[i]) for i in np.flatnonzero(reasons != "")}
    assert set(listed) == set(broken_tree[1]) == {str(ids[i]) for i in np.flatnonzero(status == w300lp.STATUS_SKIPPED)}
    assert [tuple(f) for f in g.attrs["failures"]] == sorted(listed.items())


# ---------------------------------------------------------------------------------------------
# bad input, settings


def test_bad_input_and_changed_settings(tmp_path, tree, model, store):
    root = tree[0]
    with pytest.raises(ValueError, match="store"):
        w300lp.preprocess(root, tmp_path / "x.zarr", model=model, store="meshes")
    with pytest.raises(ValueError, match="workers"):
        w300lp.preprocess(root, tmp_path / "x.zarr", model=model, workers=0)
    with pytest.raises(ValueError, match="margin"):
        w300lp.preprocess(root, tmp_path / "x.zarr", model=model, margin=0)
    with pytest.raises(TypeError, match="model"):
        w300lp.preprocess(root, tmp_path / "x.zarr", model=42)
    with pytest.raises(FileNotFoundError, match="root"):
        w300lp.preprocess(tmp_path / "missing", tmp_path / "x.zarr", model=model)
    # resuming into a store made with other settings is refused, naming the setting
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store[0], copy)
    with pytest.raises(ValueError, match="size"):
        w300lp.preprocess(root, copy, model=model, size=SIZE + 8, workers=1, block_size=4, progress=False)
    s = w300lp.preprocess(root, copy, model=model, size=SIZE + 8, workers=1, block_size=4, progress=False, overwrite=True)
    assert zarr.open_group(str(copy), mode="r")["images"].shape[1] == SIZE + 8 and s.blocks_resumed == 0
    with pytest.raises(ValueError, match="pt2d"):
        w300lp.crop_from_landmarks(np.zeros((68, 3)))
    with pytest.raises(ValueError, match="pt2d"):
        w300lp.crop_from_landmarks(np.ones((68, 2)))
    # finite landmarks whose box side overflows to inf gave scale 0, then a ZeroDivisionError in
    # crop_image that stopped the whole job (process_samples skips a sample on ValueError only)
    wide = np.zeros((68, 2))
    wide[0], wide[1] = -1e308, 1e308
    with pytest.raises(ValueError, match="pt2d"):
        w300lp.crop_from_landmarks(wide)


def test_limit_takes_the_first_ids(tmp_path, tree, model, store):
    s = w300lp.preprocess(tree[0], tmp_path / "lim.zarr", model=model, size=SIZE, workers=1, block_size=4, limit=5,
                          progress=False)
    g = zarr.open_group(str(tmp_path / "lim.zarr"), mode="r")
    assert s.n_samples == 5 and list(g["ids"][:]) == sorted(tree[1])[:5]
    np.testing.assert_array_equal(g["images"][:], zarr.open_group(str(store[0]), mode="r")["images"][:5])


def test_cli_preprocess_300wlp(tmp_path, tree, model, store, capsys):
    from bfm.formats import save_npz
    from meshkit.cli import main

    npz = save_npz(tmp_path / "model.npz", model)
    out = tmp_path / "cli.zarr"
    rc = main(["preprocess-300wlp", str(tree[0]), "--out", str(out), "--model", str(npz), "--size", str(SIZE),
               "--workers", "1", "--block-size", "4", "--no-progress"])
    assert rc == 0
    assert "16 processed, 0 skipped" in capsys.readouterr().out
    _assert_same_store(out, store[0], exact=False)
    assert main(["preprocess-300wlp", str(tree[0]), "--out", str(out)]) == 2
    assert "--model" in capsys.readouterr().err
    assert main(["preprocess-300wlp", str(tree[0]), "--out", str(out), "--model", str(npz), "--size", "3"]) == 2
    assert "size" in capsys.readouterr().err
    lossless = tmp_path / "lossless.zarr"
    assert main(["preprocess-300wlp", str(tree[0]), "--out", str(lossless), "--model", str(npz), "--size", str(SIZE),
                 "--workers", "1", "--block-size", "4", "--no-progress", "--image-codec", "lossless"]) == 0
    assert zarr.open_group(str(lossless), mode="r").attrs["config"]["image_codec"] == "lossless"


def test_open_store_refuses_other_folders(tmp_path):
    with pytest.raises(FileNotFoundError):
        w300lp.open_store(tmp_path / "none.zarr")
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w")
    with pytest.raises(ValueError, match="not a meshkit 300W-LP store"):
        w300lp.open_store(tmp_path / "other.zarr")
    (tmp_path / "plain").mkdir()  # an existing folder that is no zarr store: the message names the argument
    with pytest.raises(ValueError, match="^store: .*plain.* not a zarr store"):
        w300lp.open_store(tmp_path / "plain")


def test_store_is_chunked_along_samples(store):
    g = zarr.open_group(str(store[0]), mode="r")
    for k in ("images", "vertices", "landmarks2d", "status"):
        assert g[k].chunks[0] == 4 and g[k].chunks[1:] == g[k].shape[1:]
    assert not Path(store[0], ".w300lp").exists()


def test_hierarchy_levels_are_down_sampled_meshes(tmp_path, tree, model, store):
    sampling_io = pytest.importorskip("sampling.io")
    from sampling import build_hierarchy

    h = build_hierarchy(model.mean, model.triangles, factors=(4, 4))
    path = sampling_io.save(h, tmp_path / "h.npz")
    out = tmp_path / "lv.zarr"
    w300lp.preprocess(tree[0], out, model=model, size=SIZE, workers=1, block_size=4, hierarchy=path, progress=False)
    g = zarr.open_group(str(out), mode="r")
    v = zarr.open_group(str(store[0]), mode="r")["vertices"][:].astype(np.float64)
    np.testing.assert_array_equal(g["vertices"][:], v.astype(np.float32))
    lv1, lv2 = g["vertices_level1"][:], g["vertices_level2"][:]
    assert lv1.shape[1:] == (h.levels[1].n_vertices, 3) and lv2.shape[1:] == (h.levels[2].n_vertices, 3)
    for i in range(len(v)):  # down is a selection: the kept vertices, in kept order
        np.testing.assert_allclose(lv1[i], v[i][h.kept[0]], atol=1e-4)
        np.testing.assert_allclose(lv2[i], v[i][h.kept[0]][h.kept[1]], atol=1e-4)
    assert g.attrs["config"]["hierarchy_levels"] == [h.levels[1].n_vertices, h.levels[2].n_vertices]
    with pytest.raises(ValueError, match="hierarchy"):
        w300lp.preprocess(tree[0], tmp_path / "p.zarr", model=model, store="params", hierarchy=path)
    with pytest.raises(ValueError, match="columns"):
        w300lp.preprocess(tree[0], tmp_path / "p.zarr", model=model, hierarchy=[h.down[1]])
    with pytest.raises(TypeError, match="hierarchy"):
        w300lp.preprocess(tree[0], tmp_path / "p.zarr", model=model, hierarchy=[np.eye(3)])


@pytest.mark.slow
def test_sigkill_of_the_job_then_resume_gives_the_same_store(tmp_path, tree, model):
    """SIGKILL the job's main process as soon as a block is done (its workers then notice and exit),
    restart the same command: the store equals an uninterrupted run's."""
    import signal
    import time

    root = tree[0]
    clean = tmp_path / "clean.zarr"
    w300lp.preprocess(root, clean, model=model, size=SIZE, workers=2, block_size=1, progress=False)
    killed = tmp_path / "killed.zarr"
    code = ("from bfm import w300lp; from bfm.synthetic import small_model; "
            f"w300lp.preprocess({str(root)!r}, {str(killed)!r}, model=small_model(), size={SIZE}, workers=2, "
            "block_size=1, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (killed / "status" / "c").is_dir() and any((killed / "status" / "c").iterdir()):
                break
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    time.sleep(1.0)  # the orphaned workers exit within 0.25 s of the job's death
    n_done = len(_done_blocks(killed, 1))
    with pytest.warns(RuntimeWarning, match="took over the stale lock"):  # the dead job's
        s = w300lp.preprocess(root, killed, model=model, size=SIZE, workers=2, block_size=1, progress=False)
    assert s.blocks_resumed == n_done < s.blocks_total == len(tree[1])
    _assert_same_store(killed, clean)


@pytest.mark.parametrize("scale", [1.0, 0.5, 2.0, 0.37])
def test_crop_image_follows_the_pixel_index_map(scale):
    """Closed form: a smooth blob centred at pixel-index (cx, cy) in the source ends at
    s * ((cx, cy) - (x0, y0)) in the crop (intensity-weighted centroid), for up- and down-scaling."""
    h = w = 200
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    cx, cy = 93.3, 71.8
    sigma = 6.0
    blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    img = np.repeat((blob * 255).round().astype(np.uint8)[..., None], 3, axis=2)
    crop = w300lp.CropTransform(scale=scale, x0=40.25, y0=30.5)
    size = 160
    out = w300lp.crop_image(img, crop, size)[..., 0].astype(float)
    oy, ox = np.mgrid[0:size, 0:size]
    c = np.array([(out * ox).sum(), (out * oy).sum()]) / out.sum()
    np.testing.assert_allclose(c, [scale * (cx - crop.x0), scale * (cy - crop.y0)], atol=0.05 + 0.02 / scale)


def test_a_foreign_zarr_store_at_out_is_never_deleted(tmp_path, tree, model):
    foreign = tmp_path / "mine.zarr"
    g = zarr.open_group(str(foreign), mode="w")
    g.create_array("my_precious", shape=(3,), dtype="int32")[:] = [1, 2, 3]
    for overwrite in (False, True):  # not even with overwrite=True: it replaces our own stores only
        with pytest.raises(ValueError, match="did not make"):
            w300lp.preprocess(tree[0], foreign, model=model, workers=1, progress=False, overwrite=overwrite)
        assert zarr.open_group(str(foreign), mode="r")["my_precious"][:].tolist() == [1, 2, 3]


def test_overwrite_never_deletes_a_folder_that_is_no_zarr_store(tmp_path, tree, model):
    """overwrite=True replaces stores; an out folder that is no zarr store (here: the folder holding the
    300W-LP tree itself) was renamed aside and deleted, taking the input with it."""
    data = tmp_path / "data"
    shutil.copytree(tree[0], data / "300W_LP")
    n_files = sum(1 for _ in (data / "300W_LP").rglob("*"))
    with pytest.raises(ValueError, match="^out: .*not a zarr store.*overwrite"):
        w300lp.preprocess(data / "300W_LP", data, model=model, workers=1, progress=False, overwrite=True)
    assert sum(1 for _ in (data / "300W_LP").rglob("*")) == n_files
    plain = tmp_path / "notes.txt"
    plain.write_text("mine")
    with pytest.raises(ValueError, match="^out: .*not a zarr store"):
        w300lp.preprocess(tree[0], plain, model=model, workers=1, progress=False, overwrite=True)
    assert plain.read_text() == "mine"


def test_resume_with_another_model_is_refused(tmp_path, tree, model, store):
    from bfm.model import MorphableModel

    other = MorphableModel(mean=model.mean, shape_basis=model.shape_basis * np.r_[np.ones(5), 3 * np.ones(model.n_shape - 5)],
                           shape_std=model.shape_std, expression_basis=model.expression_basis,
                           expression_std=model.expression_std, triangles=model.triangles, landmarks=model.landmarks,
                           name=model.name)
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store[0], copy)
    cfg = zarr.open_group(str(copy), mode="r").attrs["config"]
    with pytest.raises(ValueError, match="model_token"):
        w300lp.preprocess(tree[0], copy, model=other, size=cfg["size"], block_size=cfg["block_size"], workers=1,
                          progress=False)


def test_a_model_with_another_expression_basis_is_refused(tmp_path, tree, model):
    from bfm.model import MorphableModel

    rng = np.random.default_rng(0)
    e = rng.normal(size=(3 * model.n_vertices, 79)).astype(np.float32)  # e.g. Exp_Pca.bin's 79 components
    m79 = MorphableModel(mean=model.mean, shape_basis=model.shape_basis, shape_std=model.shape_std,
                         expression_basis=e, expression_std=np.ones(79, np.float32), triangles=model.triangles,
                         landmarks=model.landmarks)
    with pytest.raises(ValueError, match="29-component"):
        w300lp.preprocess(tree[0], tmp_path / "x.zarr", model=m79, workers=1, progress=False)


# ---------------------------------------------------------------------------------------------
# photo-like synthetic images, the compiled crop and pose kernels, the store's image codecs


@pytest.fixture(scope="module")
def photo_tree(tmp_path_factory, model):
    root = tmp_path_factory.mktemp("photo") / "300W_LP"
    truth = write_synthetic_300wlp(root, model, n_per_subset=2, subsets=("AFW", "HELEN"), seed=7)
    return root, truth


def test_photo_images_have_natural_image_statistics(photo_tree):
    """Real 300W-LP figures (450 x 450 JPEG of 30-60 KB; a 256 x 256 crop ~185 KB in zstd) and a
    natural-image power spectrum (radially averaged power ~ 1/f^a with a near 2) on the background."""
    import numcodecs

    root, _ = photo_tree
    samples = w300lp.discover(root)
    sizes = [s.image.stat().st_size for s in samples]
    assert 25_000 < np.mean(sizes) < 70_000
    crops, slopes = [], []
    for s in samples:
        d = w300lp.read_sample(s)
        crops.append(w300lp.crop_image(d["image"], w300lp.crop_from_landmarks(d["pt2d"], size=256), 256))
        g = d["image"][:128, :128].astype(float).mean(axis=2)  # a corner: background (and hair)
        p = np.abs(np.fft.fftshift(np.fft.fft2(g - g.mean()))) ** 2
        yy, xx = np.indices(p.shape) - 64
        r = np.hypot(xx, yy).astype(int)
        radial = np.bincount(r.ravel(), p.ravel()) / np.bincount(r.ravel())
        f = np.arange(4, 40)
        slopes.append(np.polyfit(np.log(f), np.log(radial[f]), 1)[0])
    zstd = np.mean([len(numcodecs.Zstd(level=0).encode(c.tobytes())) for c in crops])
    assert zstd > 0.75 * 256 * 256 * 3  # real crops: 185 KB of 197 KB; the plain renders: ~78 KB
    assert -3.5 < np.median(slopes) < -1.5


def test_photo_style_keeps_the_parameters_and_is_deterministic(tmp_path, model, photo_tree):
    root, truth = photo_tree
    again = tmp_path / "again"
    truth2 = write_synthetic_300wlp(again, model, n_per_subset=2, subsets=("AFW", "HELEN"), seed=7)
    plain = write_synthetic_300wlp(tmp_path / "plain", model, n_per_subset=2, subsets=("AFW", "HELEN"), seed=7,
                                   style="plain")
    for k in truth:
        assert (root / f"{k}.jpg").read_bytes() == (again / f"{k}.jpg").read_bytes()
        for name in ("pose_para", "shape_para", "exp_para", "pt2d"):
            np.testing.assert_array_equal(truth[k][name], truth2[k][name])
            np.testing.assert_array_equal(truth[k][name], plain[k][name])
    with pytest.raises(ValueError, match="style"):
        write_synthetic_300wlp(tmp_path / "x", model, n_per_subset=1, style="fancy")


@pytest.mark.parametrize("scale", [1.0, 0.61, 1.7])
def test_crop_image_matches_scipy_bilinear(scale):
    """The compiled crop equals scipy.ndimage.map_coordinates (order 1) at the mapped pixel indices,
    to rounding, wherever the sample point lies inside the source; black where it lies outside."""
    from scipy.ndimage import map_coordinates

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    crop = w300lp.CropTransform(scale=scale, x0=-12.3, y0=7.6)
    size = 64
    out = w300lp.crop_image(img, crop, size).astype(float)
    j, i = np.mgrid[0:size, 0:size].astype(float)
    x, y = crop.x0 + i / scale, crop.y0 + j / scale
    inside = (x >= 0) & (x <= 89) & (y >= 0) & (y <= 69)
    outside = (x < -0.5) | (x > 89.5) | (y < -0.5) | (y > 69.5)
    for c in range(3):
        ref = map_coordinates(img[..., c].astype(float), [y, x], order=1)
        assert np.abs(out[..., c][inside] - ref[inside]).max() <= 0.5 + 1e-9
    assert (out[outside] == 0).all() and inside.sum() > 500 and outside.sum() > 100


def test_block_pose_and_crop_match_the_face3d_reference(tree, model):
    """process_samples' one-pass pose + flip + crop against face3d's matrices and crop rule (float64)."""
    samples = w300lp.discover(tree[0])[:4]
    arrays, failures = w300lp.process_samples(model, samples, size=SIZE)
    assert not failures
    for i, s in enumerate(samples):
        d = w300lp.read_sample(s, load_image=False)
        v = model.reconstruct(d["shape_para"][: model.n_shape], d["exp_para"][: model.n_expression]).astype(float)
        img = _face3d_pose(v, d["pose_para"], IMG)
        sc, corner = _face3d_crop(d["pt2d"], SIZE)
        ref = np.column_stack([sc * (img[:, 0] - corner[0]), sc * (img[:, 1] - corner[1]), sc * img[:, 2]])
        ref[:, 2] -= ref[:, 2].min()
        np.testing.assert_allclose(arrays["vertices"][i], ref, rtol=1e-5, atol=1e-3)
        assert arrays["vertices"][i].dtype == np.float32


def test_jpeg_and_lossless_image_codecs(tmp_path, photo_tree, model):
    """image_codec="jpeg": every crop of a chunk is a JPEG stream Pillow decodes to what zarr returns,
    within a few levels of the lossless store's exact crop (PSNR > 38 dB) and several times smaller;
    xarray reads it; the codec is part of the settings (resume refused with another one)."""
    import io

    import xarray as xr

    root, _ = photo_tree
    stores = {}
    for codec in ("jpeg", "lossless"):
        stores[codec] = tmp_path / f"{codec}.zarr"
        w300lp.preprocess(root, stores[codec], model=model, size=64, workers=1, block_size=4, image_codec=codec,
                          progress=False)
    gj, gl = w300lp.open_store(stores["jpeg"]), w300lp.open_store(stores["lossless"])
    assert gj.attrs["config"]["image_codec"] == "jpeg" and gj.attrs["config"]["jpeg_quality"] == 95
    jpeg, exact = gj["images"][:], gl["images"][:]
    err = jpeg.astype(float) - exact
    assert 10 * np.log10(255**2 / (err**2).mean()) > 38
    # the first chunk on disk: a count, the lengths, then JPEG streams (independent decoder: Pillow)
    raw = (stores["jpeg"] / "images" / "c" / "0" / "0" / "0" / "0").read_bytes()
    n = int(np.frombuffer(raw[:4], "<u4")[0])
    lengths = np.frombuffer(raw[4: 4 + 4 * n], "<u4")
    assert n == 4
    pos = 4 + 4 * n
    for k, ln in enumerate(lengths):
        assert raw[pos: pos + 2] == b"\xff\xd8"
        pil = np.asarray(Image.open(io.BytesIO(raw[pos: pos + ln])).convert("RGB"))
        assert np.abs(pil.astype(int) - jpeg[k]).max() <= 2  # IDCT rounding between decoders
        pos += ln
    size = {c: sum(p.stat().st_size for p in (stores[c] / "images").rglob("*") if p.is_file()) for c in stores}
    assert size["jpeg"] * 2 < size["lossless"]
    ds = xr.open_zarr(stores["jpeg"])
    np.testing.assert_array_equal(ds["images"].values, jpeg)
    with pytest.raises(ValueError, match="image_codec"):
        w300lp.preprocess(root, stores["jpeg"], model=model, size=64, workers=1, block_size=4, image_codec="lossless",
                          progress=False)
    with pytest.raises(ValueError, match="image_codec"):
        w300lp.preprocess(root, tmp_path / "x.zarr", model=model, image_codec="png", progress=False)
    with pytest.raises(ValueError, match="jpeg_quality"):
        w300lp.preprocess(root, tmp_path / "x.zarr", model=model, jpeg_quality=0, progress=False)


def test_model_folders_of_killed_jobs_are_removed(tmp_path, tree, model, monkeypatch):
    """Local workers map the model from a temporary folder; the job removes it, and a folder left by a
    killed job (its pid no longer runs) is removed by the next job."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = tmp_path / f"w300lp-model-{dead.pid}-abc"
    left.mkdir()
    (left / "mean.npy").write_bytes(b"x")
    w300lp.preprocess(tree[0], tmp_path / "s.zarr", model=model, size=SIZE, workers=2, block_size=8, limit=8,
                      progress=False)
    assert not left.exists()
    assert not list(tmp_path.glob("w300lp-model-*"))

"""bfm.dataset: the iBUG mirror permutation, the vertex mirror map, and augmentations that keep the
crop, the mesh and the landmarks aligned.

References: the iBUG flip table is checked against the published face-alignment ``shuffle_lr``
order (a fact, written out below) and against geometry (the synthetic model's landmarks, which are
placed symmetrically); the vertex mirror map against a brute-force nearest neighbour; alignment
under augmentation by colour: every visible vertex of the augmented mesh must sit on a pixel of
the augmented image showing that vertex's own colour (left/right-asymmetric colours, so a flip
without the right permutation fails), with a z-buffer visibility test from meshkit's rasterizer.
"""

from __future__ import annotations

import numpy as np
import pytest

from bfm import w300lp
from bfm.dataset import (
    IBUG_FLIP,
    Augmentation,
    W300LPDataset,
    apply_augmentation,
    augmentation_matrix,
    random_augmentation,
    vertex_mirror_map,
)
from bfm.synthetic import small_model
from bfm.synthetic_300wlp import vertex_pattern_colors, write_synthetic_300wlp
from tests._helpers import mirror_consistent_model

torch = pytest.importorskip("torch")

SIZE = 64

# face-alignment's shuffle_lr order for 68 points (published table, 0-based)
FACE_ALIGNMENT_PAIRS = [16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
                        27, 28, 29, 30, 35, 34, 33, 32, 31, 45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40, 54, 53, 52, 51,
                        50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65]


@pytest.fixture(scope="module")
def model():
    """small_model with its landmarks made exactly mirror-consistent (midline points on x = 0)."""
    return mirror_consistent_model(small_model())


@pytest.fixture(scope="module")
def stores(tmp_path_factory, model):
    root = tmp_path_factory.mktemp("ds") / "300W_LP"
    write_synthetic_300wlp(root, model, n_per_subset=1, image_size=200, face_px=90, seed=5, colors="pattern",
                           subsets=("AFW", "IBUG"))
    out = {}
    for mode in ("vertices", "params"):
        out[mode] = tmp_path_factory.mktemp(mode) / "s.zarr"
        w300lp.preprocess(root, out[mode], model=model, size=SIZE, store=mode, workers=1, block_size=2, progress=False)
    return out


def test_ibug_flip_matches_the_published_table_and_is_an_involution():
    assert list(IBUG_FLIP) == FACE_ALIGNMENT_PAIRS
    p = np.array(IBUG_FLIP)
    np.testing.assert_array_equal(p[p], np.arange(68))
    assert set(np.flatnonzero(p == np.arange(68))) == {8, 27, 28, 29, 30, 33, 51, 57, 62, 66}


def test_ibug_flip_agrees_with_the_synthetic_models_geometry():
    """On the synthetic model (symmetric mean), landmark IBUG_FLIP[j] sits at the mirror of landmark j."""
    m = small_model()
    lm = m.mean[m.landmarks].astype(np.float64)
    mirrored = lm * np.array([-1.0, 1.0, 1.0])
    d = np.linalg.norm(mirrored - lm[list(IBUG_FLIP)], axis=1)
    width = np.ptp(m.mean[:, 0])
    assert np.median(d) < 1e-6 * width and d.max() < 0.05 * width


def test_vertex_mirror_map_equals_brute_force(model):
    v = model.mean.astype(np.float64)
    mirror, dist = vertex_mirror_map(v, return_distance=True)
    r = v * np.array([-1.0, 1.0, 1.0])
    d2 = ((r[:, None, :] - v[None, :, :]) ** 2).sum(-1)
    np.testing.assert_array_equal(mirror, d2.argmin(axis=1))
    np.testing.assert_allclose(dist, np.sqrt(d2.min(axis=1)), atol=1e-6)
    np.testing.assert_array_equal(mirror[mirror], np.arange(len(v)))  # the template is exactly symmetric
    # an offset symmetry plane is found from the bounding box, or given
    np.testing.assert_array_equal(vertex_mirror_map(v + [1000.0, 0, 0]), mirror)
    np.testing.assert_array_equal(vertex_mirror_map(v, center_x=0.0), mirror)
    with pytest.raises(ValueError, match="vertices"):
        vertex_mirror_map(np.zeros((4, 2)))


def test_augmentation_matrix_closed_form():
    size = 65
    c = (size - 1) / 2
    aug = Augmentation(angle=np.pi / 2, tx=3.0, ty=-2.0, scale=2.0, flip=False)
    m = augmentation_matrix(aug, size)
    # (c + 1, c) is one pixel right of the centre: rotated +90 deg (y down) it goes 2 pixels down
    np.testing.assert_allclose(m @ [c + 1, c, 1], [c + 3, c + 2 - 2])
    flip = augmentation_matrix(Augmentation(flip=True), size)
    np.testing.assert_allclose(flip @ [0, 5, 1], [size - 1, 5])
    np.testing.assert_allclose(augmentation_matrix(Augmentation(), size), [[1, 0, 0], [0, 1, 0]])


def test_random_augmentation_ranges_and_validation():
    rng = np.random.default_rng(0)
    augs = [random_augmentation(rng, 100) for _ in range(400)]
    a = np.array([[x.angle, x.tx, x.ty, x.scale, x.flip] for x in augs])
    assert np.abs(a[:, 0]).max() <= np.deg2rad(45) and np.abs(a[:, 0]).max() > np.deg2rad(40)
    assert np.abs(a[:, 1:3]).max() <= 10 and a[:, 3].min() >= 0.9 and a[:, 3].max() <= 1.2
    assert 0.4 < a[:, 4].mean() < 0.6
    with pytest.raises(TypeError, match="rng"):
        random_augmentation(0, 100)
    with pytest.raises(ValueError, match="scale"):
        random_augmentation(rng, 100, scale=(1.2, 0.9))
    with pytest.raises(ValueError, match="rotation"):
        random_augmentation(rng, 100, rotation=-1)


def _colour_error(image, vertices, colors, faces):
    """Mean |image(vertex) - colour(vertex)| over the vertices visible in the z-buffer, bilinear."""
    from meshkit.render import render_depth

    s = image.shape[0]
    w = vertices.astype(np.float64)  # pixel indices: the rasterizer's own coordinates
    depth = render_depth(w, faces, s, s, background=-1e9)
    x, y = vertices[:, 0], vertices[:, 1]
    inside = (x > 1) & (x < s - 2) & (y > 1) & (y < s - 2)
    xi, yi = np.clip(np.round(x).astype(int), 0, s - 1), np.clip(np.round(y).astype(int), 0, s - 1)
    vis = inside & (np.abs(depth[yi, xi] - vertices[:, 2]) < 0.5)
    x0, y0 = np.floor(x[vis]).astype(int), np.floor(y[vis]).astype(int)
    fx, fy = (x[vis] - x0)[:, None], (y[vis] - y0)[:, None]
    img = image.astype(np.float64) / 255.0
    val = (img[y0, x0] * (1 - fx) * (1 - fy) + img[y0, x0 + 1] * fx * (1 - fy) + img[y0 + 1, x0] * (1 - fx) * fy
           + img[y0 + 1, x0 + 1] * fx * fy)
    return np.abs(val - colors[vis]).mean(), int(vis.sum())


def _render_pattern(model, v, size):
    from meshkit.render import render_colors

    w = v.astype(np.float64)  # pixel indices: the rasterizer's own coordinates
    return np.clip(np.round(render_colors(w, model.triangles, vertex_pattern_colors(model), size, size) * 255), 0,
                   255).astype(np.uint8)


@pytest.mark.parametrize("aug", [
    Augmentation(angle=np.deg2rad(40)),
    Augmentation(angle=np.deg2rad(-45)),
    Augmentation(tx=6.4, ty=-6.4),
    Augmentation(scale=0.9),
    Augmentation(scale=1.2),
    Augmentation(flip=True),
    Augmentation(angle=np.deg2rad(-30), tx=-5.0, ty=3.0, scale=1.15, flip=True),
], ids=["rot+40", "rot-45", "shift", "scale0.9", "scale1.2", "flip", "all"])
def test_image_mesh_and_landmarks_stay_aligned(stores, model, aug):
    g = w300lp.open_store(stores["vertices"])
    v = g["vertices"][0].astype(np.float64)
    colors = vertex_pattern_colors(model)
    image = _render_pattern(model, v, SIZE)  # an exact render of the stored mesh, to augment
    base_err, n_vis = _colour_error(image, v, colors, model.triangles)
    assert base_err < 0.03 and n_vis > 200
    mirror = vertex_mirror_map(model.mean)
    img2, v2, l2, l3 = apply_augmentation(image, v, g["landmarks2d"][0], g["landmarks3d"][0], aug, vertex_mirror=mirror)
    # image and mesh stay aligned: the augmented vertex i shows the colour painted where it came
    # from, which after a flip is the old vertex mirror[i]
    expected = colors[mirror] if aug.flip else colors
    err, n_vis2 = _colour_error(img2, v2, expected, model.triangles)
    assert n_vis2 > 100 and err < 0.04, (err, base_err)
    # ... and vertex i is still anatomical point i: x in the image grows with the model's x, as
    # before the augmentation (without the flip permutation the correlation changes sign)
    def corr(a):
        return np.corrcoef(a[:, 0], model.mean[:, 0])[0, 1]

    assert corr(v) > 0.5 and corr(v2) > 0.5 * np.cos(aug.angle)
    if aug.flip:
        assert corr(v2[mirror]) < -0.5 * np.cos(aug.angle)
        assert l2[36, 0] < l2[45, 0]  # iBUG 36 (outer corner of the image-left eye) stays on the left
    # landmarks follow the mesh: the same permutation rule, and z scaled like x, y
    np.testing.assert_allclose(l3, v2[model.landmarks], atol=1e-3)
    np.testing.assert_allclose(l2, v2[model.landmarks, :2], atol=0.05)  # pt2d == projection in synthetic data
    assert v2[:, 2].min() == pytest.approx(0.0, abs=1e-4)
    np.testing.assert_allclose(np.ptp(v2[:, 2]), aug.scale * np.ptp(v[:, 2]), rtol=1e-5)


def test_apply_augmentation_validates(stores, model):
    g = w300lp.open_store(stores["vertices"])
    img, v = g["images"][0], g["vertices"][0]
    with pytest.raises(ValueError, match="vertex_mirror"):
        apply_augmentation(img, v, None, None, Augmentation(flip=True))
    with pytest.raises(ValueError, match="image"):
        apply_augmentation(img[:, :10], v, None, None, Augmentation())
    with pytest.raises(ValueError, match="vertices"):
        apply_augmentation(img, v[:, :2], None, None, Augmentation())


def test_dataset_items_vertices_and_params_modes_agree(stores, model):
    dv = W300LPDataset(stores["vertices"], model=model)
    dp = W300LPDataset(stores["params"], model=model)
    assert len(dv) == len(dp) == 4
    for i in range(len(dv)):
        a, b = dv[i], dp[i]
        assert a["id"] == b["id"] and a["image"].shape == (3, SIZE, SIZE) and a["image"].dtype == torch.float32
        assert float(a["image"].max()) <= 1.0
        torch.testing.assert_close(a["image"], b["image"])
        torch.testing.assert_close(a["vertices"], b["vertices"], atol=2e-3, rtol=0)
        torch.testing.assert_close(a["augmentation"], torch.tensor([0, 0, 0, 1, 0], dtype=torch.float32))
    with pytest.raises(ValueError, match="model"):
        W300LPDataset(stores["params"])
    with pytest.raises(ValueError, match="flip"):
        W300LPDataset(stores["vertices"], augment=True)
    with pytest.raises(IndexError):
        dv.raw(10)


def test_dataset_augmentation_is_reproducible_per_epoch_and_consistent(stores, model):
    ds = W300LPDataset(stores["params"], model=model, augment=True, seed=3)
    first = [ds[i] for i in range(len(ds))]
    again = [ds[i] for i in range(len(ds))]
    for a, b in zip(first, again, strict=True):
        torch.testing.assert_close(a["image"], b["image"])
        torch.testing.assert_close(a["augmentation"], b["augmentation"])
    ds.set_epoch(1)
    other = [ds[i] for i in range(len(ds))]
    assert any(not torch.equal(a["augmentation"], b["augmentation"]) for a, b in zip(first, other, strict=True))
    raw = W300LPDataset(stores["params"], model=model)
    for i, item in enumerate(first):
        np.testing.assert_allclose(item["landmarks3d"].numpy(), item["vertices"].numpy()[model.landmarks], atol=1e-3)
        sign = np.array([1, -1, -1]) if float(item["augmentation"][4]) else np.ones(3)
        np.testing.assert_allclose(item["pose"].numpy(), raw[i]["pose"].numpy() * sign)
    # a DataLoader batches the items
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=0)
    batch = next(iter(loader))
    assert batch["image"].shape == (2, 3, SIZE, SIZE) and batch["vertices"].shape == (2, model.n_vertices, 3)


@pytest.mark.parametrize("aug", [Augmentation(angle=0.6, tx=4.0, ty=-3.0, scale=1.15),
                                 Augmentation(angle=-0.7, scale=0.9, flip=True)], ids=["rot", "rot-flip"])
def test_image_warp_moves_a_blob_like_its_points(aug):
    """Closed form: a blob centred at p ends (intensity centroid) at M p, M = augmentation_matrix."""
    s = 96
    yy, xx = np.mgrid[0:s, 0:s].astype(float)
    p = np.array([58.3, 37.6])
    blob = np.exp(-((xx - p[0]) ** 2 + (yy - p[1]) ** 2) / (2 * 4.0**2))
    img = np.repeat((blob * 255).round().astype(np.uint8)[..., None], 3, axis=2)
    out, _, l2, _ = apply_augmentation(img, None, p[None, :], None, aug, landmark_flip=[0])
    o = out[..., 0].astype(float)
    c = np.array([(o * xx).sum(), (o * yy).sum()]) / o.sum()
    m = augmentation_matrix(aug, s)
    np.testing.assert_allclose(c, m[:, :2] @ p + m[:, 2], atol=0.08)
    np.testing.assert_allclose(l2[0], m[:, :2] @ p + m[:, 2], atol=1e-4)


def test_params_store_refuses_another_model(stores, model):
    from bfm.model import MorphableModel

    other = MorphableModel(mean=model.mean + 1.0, shape_basis=model.shape_basis, shape_std=model.shape_std,
                           expression_basis=model.expression_basis, expression_std=model.expression_std,
                           triangles=model.triangles, landmarks=model.landmarks)
    with pytest.raises(ValueError, match="another model"):
        W300LPDataset(stores["params"], model=other)
    assert len(W300LPDataset(stores["params"], model=model)) > 0  # the right model is accepted


# ---------------------------------------------------------------------------------------------
# W300LPDataset as a torch Dataset: cheap to pickle, lazily opened per worker, every array returned


def test_dataset_is_a_torch_dataset_and_bfm_imports_without_torch(stores, model):
    import subprocess
    import sys

    ds = W300LPDataset(stores["vertices"], model=model)
    assert isinstance(ds, torch.utils.data.Dataset)
    assert isinstance(ds, W300LPDataset)
    code = ("import sys, bfm, bfm.w300lp; from bfm.dataset import W300LPDataset; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def bfm_sized(tmp_path_factory):
    """A model of the real BFM's size (53,215 vertices, 199 + 29 components) and a small vertices store."""
    from bfm.model import MorphableModel
    from bfm.synthetic import synthetic_model

    base = synthetic_model(n_shape=8, n_expression=4, n_texture=0)
    rng = np.random.default_rng(0)
    n3 = 3 * base.n_vertices
    m = MorphableModel(mean=base.mean, shape_basis=rng.standard_normal((n3, 199), dtype=np.float32) * 1e-3,
                       shape_std=np.ones(199, np.float32), triangles=base.triangles, landmarks=base.landmarks,
                       expression_basis=rng.standard_normal((n3, 29), dtype=np.float32) * 1e-3,
                       expression_std=np.ones(29, np.float32), name="bfm-sized")
    root = tmp_path_factory.mktemp("big") / "300W_LP"
    write_synthetic_300wlp(root, m, n_per_subset=1, image_size=160, face_px=80, seed=2, subsets=("AFW", "IBUG"))
    out = tmp_path_factory.mktemp("bigstore") / "s.zarr"
    w300lp.preprocess(root, out, model=m, size=SIZE, store="params", workers=1, block_size=2, progress=False)
    return m, out


def test_dataset_pickles_small_even_with_a_bfm_sized_model(bfm_sized, tmp_path, monkeypatch):
    import pickle
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the model object is written once

    m, out = bfm_sized
    model_bytes = m.shape_basis.nbytes + m.expression_basis.nbytes
    assert model_bytes > 100e6
    ds = W300LPDataset(out, model=m, augment=True, seed=1)
    blob = pickle.dumps(ds)
    assert len(blob) < 100_000, len(blob)
    # the copy opens the store and loads the model (from the file written once) on first use
    assert list((tmp_path / "meshkit-dataset-models").glob("model-*.npz"))
    copy = pickle.loads(blob)
    assert copy._model is None and copy._group is None
    a, b = ds[1], copy[1]
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
        else:
            assert a[k] == b[k]
    # a model given by path pickles as the path
    from bfm.formats import save_npz

    path = save_npz(out.parent / "model.npz", m)
    assert len(pickle.dumps(W300LPDataset(out, model=path))) < 100_000


def test_model_cache_removes_files_unused_for_weeks(stores, model, tmp_path, monkeypatch):
    """The temp folder of pickled models: writing a new model removes files unused for MODEL_CACHE_DAYS,
    keeps recent ones, and pickling a dataset again marks its file as used."""
    import os
    import pickle
    import tempfile
    import time

    import bfm.dataset as dsmod

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    cache = tmp_path / "meshkit-dataset-models"
    cache.mkdir()
    now = time.time()
    stale, recent = cache / "model-stale.npz", cache / "model-recent.npz"
    for p, age_days in ((stale, dsmod.MODEL_CACHE_DAYS + 1), (recent, dsmod.MODEL_CACHE_DAYS - 1)):
        p.write_bytes(b"x")
        os.utime(p, (now - age_days * 86400,) * 2)
    ds = W300LPDataset(stores["params"], model=model)
    pickle.dumps(ds)  # writes this model's file
    written = [p for p in cache.glob("model-*.npz") if p not in (stale, recent)]
    assert len(written) == 1 and not stale.exists() and recent.exists()
    os.utime(written[0], (now - 30 * 86400,) * 2)
    pickle.dumps(ds)  # a DataLoader worker starting again: the file is in use
    assert written[0].stat().st_mtime > now - 60


def _spawn_items(ds, num_workers):
    loader = torch.utils.data.DataLoader(ds, batch_size=None, shuffle=False, num_workers=num_workers,
                                         multiprocessing_context="spawn" if num_workers else None)
    return list(loader)


def test_dataloader_with_spawned_workers_returns_the_same_items(bfm_sized, tmp_path, monkeypatch):
    import tempfile
    import time

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    m, out = bfm_sized
    ds = W300LPDataset(out, model=m, augment=True, seed=4)
    serial = _spawn_items(ds, 0)
    t0 = time.perf_counter()
    spawned = _spawn_items(ds, 2)
    seconds = time.perf_counter() - t0
    assert len(serial) == len(spawned) == len(ds) == 4
    assert {float(x["augmentation"][4]) for x in serial} == {0.0, 1.0}  # flips and no flips both happen
    for a, b in zip(serial, spawned, strict=True):
        assert a.keys() == b.keys() and a["id"] == b["id"]
        for k in a:
            if isinstance(a[k], torch.Tensor):
                torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    # two spawned workers each import torch, open the store and load the 53,215-vertex model once
    # (the issue measured 15-73 s to start with the model pickled per worker)
    assert seconds < 60, seconds
    # forget the workers' shared-memory storages now (torch otherwise frees them at interpreter exit,
    # after its own modules are gone, printing "Exception ignored ... _free_weak_ref")
    import gc

    del serial, spawned, a, b
    gc.collect()
    torch.multiprocessing.reductions.shared_cache.free_dead_references()


def _row_stochastic(n_rows, n_cols, seed):
    """A sparse (n_rows, n_cols) down matrix: 3 random columns per row, non-negative weights summing to 1."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    cols = np.stack([rng.choice(n_cols, 3, replace=False) for _ in range(n_rows)])
    w = rng.uniform(0.1, 1.0, (n_rows, 3))
    w /= w.sum(1, keepdims=True)
    return sp.csr_matrix((w.ravel(), (np.repeat(np.arange(n_rows), 3), cols.ravel())), shape=(n_rows, n_cols))


@pytest.fixture(scope="module")
def hierarchy_store(tmp_path_factory, model):
    root = tmp_path_factory.mktemp("hds") / "300W_LP"
    write_synthetic_300wlp(root, model, n_per_subset=1, image_size=200, face_px=90, seed=5, subsets=("AFW", "IBUG"))
    down = [_row_stochastic(500, model.n_vertices, 1), _row_stochastic(125, 500, 2)]
    out = tmp_path_factory.mktemp("hstore") / "s.zarr"
    w300lp.preprocess(root, out, model=model, size=SIZE, workers=1, block_size=2, hierarchy=down, progress=False)
    return out, down


@pytest.mark.parametrize("augment", [False, True], ids=["stored", "augmented"])
def test_hierarchy_store_items_hold_levels_equal_to_down_times_vertices(hierarchy_store, model, augment):
    out, down = hierarchy_store
    ds = W300LPDataset(out, model=model, hierarchy=down, augment=augment, seed=2, flip_probability=0.5)
    flips = set()
    for i in range(len(ds)):
        item = ds[i]
        v = item["vertices"].double().numpy()
        l1, l2 = item["vertices_level1"].double().numpy(), item["vertices_level2"].double().numpy()
        assert l1.shape == (500, 3) and l2.shape == (125, 3)
        np.testing.assert_allclose(l1, down[0] @ v, atol=2e-3)
        np.testing.assert_allclose(l2, down[1] @ l1, atol=2e-3)
        flips.add(float(item["augmentation"][4]))
    if augment:
        assert flips == {0.0, 1.0}


def test_hierarchy_store_flips_need_the_hierarchy(hierarchy_store, model):
    out, down = hierarchy_store
    with pytest.raises(ValueError, match="hierarchy"):
        W300LPDataset(out, model=model, augment=True)
    with pytest.raises(ValueError, match="hierarchy"):
        W300LPDataset(out, model=model, hierarchy=[down[0] * 0.5, down[1]], augment=True)
    assert len(W300LPDataset(out, model=model, augment=True, flip_probability=0.0)) == 4


def test_pickled_dataset_keeps_a_clockwise_models_triangles(tmp_path_factory, tmp_path, monkeypatch, model):
    """A model whose triangles are clockwise (as a real file holds them, loaded with winding="keep") makes a
    params store; the pickled dataset (a DataLoader worker) must load exactly that model back from the file
    written for it, not one with re-wound triangles (whose token the store refuses)."""
    import pickle
    import tempfile

    from bfm.formats import measure_winding
    from bfm.model import MorphableModel
    from meshkit.topology import reverse_winding

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    cw = MorphableModel(mean=model.mean, shape_basis=model.shape_basis, shape_std=model.shape_std,
                        expression_basis=model.expression_basis, expression_std=model.expression_std,
                        triangles=reverse_winding(model.triangles), landmarks=model.landmarks)
    assert measure_winding(cw.mean, cw.triangles) == "clockwise"
    root = tmp_path_factory.mktemp("cw") / "300W_LP"
    write_synthetic_300wlp(root, cw, n_per_subset=1, image_size=160, face_px=80, seed=3, subsets=("AFW",))
    out = tmp_path_factory.mktemp("cwstore") / "s.zarr"
    w300lp.preprocess(root, out, model=cw, size=SIZE, store="params", workers=1, block_size=2, progress=False)
    ds = W300LPDataset(out, model=cw)
    copy = pickle.loads(pickle.dumps(ds))
    a, b = ds[0], copy[0]
    np.testing.assert_array_equal(a["vertices"].numpy(), b["vertices"].numpy())
    np.testing.assert_array_equal(copy._model.triangles, cw.triangles)

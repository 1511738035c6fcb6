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

torch = pytest.importorskip("torch")

SIZE = 64

# face-alignment's shuffle_lr order for 68 points (published table, 0-based)
FACE_ALIGNMENT_PAIRS = [16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
                        27, 28, 29, 30, 35, 34, 33, 32, 31, 45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40, 54, 53, 52, 51,
                        50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65]


@pytest.fixture(scope="module")
def model():
    """small_model with its landmarks made exactly mirror-consistent (midline points on x = 0)."""
    m = small_model()
    mirror = vertex_mirror_map(m.mean)
    lm = m.landmarks.copy()
    on_mid = np.flatnonzero(mirror == np.arange(m.n_vertices))
    for j in range(68):
        if IBUG_FLIP[j] == j and mirror[lm[j]] != lm[j]:
            lm[j] = on_mid[np.argmin(np.linalg.norm(m.mean[on_mid] - m.mean[lm[j]], axis=1))]
        elif IBUG_FLIP[j] > j:
            lm[IBUG_FLIP[j]] = mirror[lm[j]]
    return m.with_landmarks(lm)


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

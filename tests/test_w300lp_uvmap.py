"""300W-LP ``store="uvmap"``: PRNet-style position maps (and UV textures) in the vertices store's crop,
returned by the dataset and augmented consistently with the image.

References: the position map against a brute-force barycentric interpolation of the *vertices
store's* meshes over the UV triangles (numpy, texel by texel), which also proves the crop is the
same; the texture against the synthetic images' known per-vertex colours; a flipped or rotated map
against the map of the flipped or rotated mesh (``apply_augmentation`` on the vertices, then a
fresh ``UVLayout``).
"""

from __future__ import annotations

import numpy as np
import pytest

from bfm import w300lp
from bfm.dataset import Augmentation, apply_augmentation, augment_position_map, vertex_mirror_map
from bfm.synthetic import small_model
from bfm.synthetic_300wlp import vertex_pattern_colors, write_synthetic_300wlp
from meshkit.render.uv import UVLayout
from meshkit.synthetic import template_uv
from tests._helpers import mirror_consistent_model

SIZE, M = 64, 48


@pytest.fixture(scope="module")
def model():
    """small_model with landmarks made exactly mirror-consistent (as in test_dataset)."""
    return mirror_consistent_model(small_model())


@pytest.fixture(scope="module")
def stores(tmp_path_factory, model):
    root = tmp_path_factory.mktemp("uv") / "300W_LP"
    write_synthetic_300wlp(root, model, n_per_subset=1, image_size=200, face_px=90, seed=5, colors="pattern", style="plain",
                           subsets=("AFW", "IBUG"))
    d = tmp_path_factory.mktemp("uvstores")
    uv = template_uv(model.mean)
    w300lp.preprocess(root, d / "v.zarr", model=model, size=SIZE, workers=1, block_size=2, progress=False)
    w300lp.preprocess(root, d / "uv.zarr", model=model, size=SIZE, store="uvmap", uv=uv, uv_size=M, uv_texture=True,
                      workers=1, block_size=2, progress=False)
    return {"vertices": d / "v.zarr", "uvmap": d / "uv.zarr", "uv": uv, "root": root}


def _brute_position_map(vertices, faces, uv, m):
    """Texel by texel: the barycentric blend of ``vertices`` over the UV triangle containing the texel
    centre (u = c / (m - 1), v = 1 - r / (m - 1)); NaN where no triangle contains it."""
    out = np.full((m, m, 3), np.nan)
    rr, cc = np.mgrid[0:m, 0:m]
    pu, pv = cc.ravel() / (m - 1), 1.0 - rr.ravel() / (m - 1)
    flat = out.reshape(-1, 3)
    for f in faces:
        a, b, c = uv[f]
        d = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        if d == 0:
            continue
        wb = ((pu - a[0]) * (c[1] - a[1]) - (pv - a[1]) * (c[0] - a[0])) / d
        wc = ((b[0] - a[0]) * (pv - a[1]) - (b[1] - a[1]) * (pu - a[0])) / d
        wa = 1 - wb - wc
        inside = (wa >= -1e-9) & (wb >= -1e-9) & (wc >= -1e-9)
        flat[inside] = wa[inside, None] * vertices[f[0]] + wb[inside, None] * vertices[f[1]] + wc[inside, None] * vertices[f[2]]
    return out


def test_uvmap_store_arrays_and_dimensions(stores, model):
    g = w300lp.open_store(stores["uvmap"])
    assert "vertices" not in g.array_keys()
    assert g["uv_position_map"].shape == (4, M, M, 3) and g["uv_position_map"].dtype == np.float32
    assert g["uv_position_map"].metadata.dimension_names == ("sample", "u_row", "u_col", "xyz")
    assert g["uv_texture"].metadata.dimension_names == ("sample", "u_row", "u_col", "channel")
    assert g["uv_texture_mask"].shape == (4, M, M) and g["uv_covered"].shape == (M, M)
    np.testing.assert_array_equal(g["uv_layout"][:], stores["uv"])
    c = g.attrs["config"]
    assert c["store"] == "uvmap" and c["uv_size"] == M and c["uv_texture"] and c["uv_mirror_texels"] < 1e-6
    assert (g["status"][:] == 1).all()
    # the other arrays are those of the vertices store
    gv = w300lp.open_store(stores["vertices"])
    for k in ("images", "landmarks2d", "landmarks3d", "crop", "pose"):
        np.testing.assert_array_equal(g[k][:], gv[k][:])


def test_position_maps_are_the_vertices_stores_meshes_in_uv_space(stores, model):
    g, gv = w300lp.open_store(stores["uvmap"]), w300lp.open_store(stores["vertices"])
    covered = g["uv_covered"][:]
    for i in range(4):
        ref = _brute_position_map(gv["vertices"][i].astype(np.float64), model.triangles, stores["uv"], M)
        pm = g["uv_position_map"][i]
        both = covered & np.isfinite(ref[..., 0])
        assert both.sum() > 0.95 * covered.sum() and both.sum() > 0.95 * np.isfinite(ref[..., 0]).sum()
        # the rasterizer snaps UVs to 1/256 texel: about 1.3 px per texel here, so 0.005 px at most
        np.testing.assert_allclose(pm[both], ref[both], atol=0.01)
        assert (pm[~covered] == 0).all()
        # PRNet's convention: x, y are crop pixel indices (the forehead may leave the crop), z starts
        # at 0 like the vertices'
        assert -SIZE < pm[covered, :2].min() and pm[covered, :2].max() < 2 * SIZE
        assert pm[covered, 2].min() >= -1e-4


def test_uv_textures_hold_the_photos_colours(stores, model):
    g = w300lp.open_store(stores["uvmap"])
    colors = vertex_pattern_colors(model).astype(np.float64)  # what the synthetic images show per vertex
    ref = _brute_position_map(colors, model.triangles, stores["uv"], M)
    for i in range(4):
        mask = g["uv_texture_mask"][i]
        assert mask.sum() > 0.5 * g["uv_covered"][:].sum()
        err = np.abs(g["uv_texture"][i][mask] / 255.0 - ref[mask])
        assert np.nanmedian(err) < 0.08, np.nanmedian(err)


@pytest.mark.parametrize("aug", [Augmentation(flip=True), Augmentation(angle=0.5, tx=3.0, ty=-2.0, scale=1.1),
                                 Augmentation(angle=-0.4, tx=-2.0, scale=0.9, flip=True)], ids=["flip", "rot", "rot-flip"])
def test_augmented_map_equals_the_map_of_the_augmented_mesh(stores, model, aug):
    g, gv = w300lp.open_store(stores["uvmap"]), w300lp.open_store(stores["vertices"])
    layout = UVLayout(stores["uv"], model.triangles, M)
    mirror = vertex_mirror_map(model.mean)
    covered = g["uv_covered"][:]
    for i in range(4):
        _, v2, _, _ = apply_augmentation(gv["images"][i], gv["vertices"][i], None, None, aug, vertex_mirror=mirror)
        expected = layout.map(v2).image
        got = augment_position_map(g["uv_position_map"][i], aug, SIZE, covered=covered)
        both = covered & covered[:, ::-1]
        err = np.linalg.norm(got[both] - expected[both], axis=1)
        # within interpolation error (the mirrored triangles need not be the triangles of the mirror)
        assert np.median(err) < 0.02 and err.max() < 0.5, (np.median(err), err.max())
        assert (got[~covered] == 0).all()
        if aug.flip:  # without the texel mirror the flip would be far off
            wrong = augment_position_map(g["uv_position_map"][i][:, ::-1], aug, SIZE, covered=covered)
            assert np.median(np.linalg.norm(wrong[both] - expected[both], axis=1)) > 1.0


def test_dataset_returns_uv_maps_consistent_with_the_image(stores, model):
    torch = pytest.importorskip("torch")
    from bfm.dataset import W300LPDataset

    ds = W300LPDataset(stores["uvmap"], augment=True, seed=7)
    plain = W300LPDataset(stores["uvmap"])
    layout = UVLayout(stores["uv"], model.triangles, M)
    gv = w300lp.open_store(stores["vertices"])
    mirror = vertex_mirror_map(model.mean)
    covered = w300lp.open_store(stores["uvmap"])["uv_covered"][:]
    flips = set()
    for i in range(len(ds)):
        item, raw = ds[i], plain[i]
        assert "vertices" not in item
        assert item["uv_position_map"].shape == (M, M, 3) and item["uv_texture"].shape == (3, M, M)
        assert item["uv_texture_mask"].dtype == torch.bool
        a = item["augmentation"].numpy()
        aug = Augmentation(float(a[0]), float(a[1]), float(a[2]), float(a[3]), bool(a[4]))
        flips.add(aug.flip)
        r = item["index"]
        img2, v2, l2, _ = apply_augmentation(gv["images"][r], gv["vertices"][r], gv["landmarks2d"][r], None, aug,
                                             vertex_mirror=mirror)
        torch.testing.assert_close(item["image"], torch.from_numpy(np.array(img2.transpose(2, 0, 1))).float() / 255)
        np.testing.assert_allclose(item["landmarks2d"].numpy(), l2, atol=1e-4)
        both = covered & covered[:, ::-1]
        err = np.linalg.norm(item["uv_position_map"].numpy()[both] - layout.map(v2).image[both], axis=1)
        assert np.median(err) < 0.02
        tex = raw["uv_texture"].flip(-1) if aug.flip else raw["uv_texture"]
        torch.testing.assert_close(item["uv_texture"], tex)
    assert flips == {False, True}


def test_uvmap_options_are_checked(stores, model, tmp_path):
    root = stores["root"]
    with pytest.raises(ValueError, match="uv"):
        w300lp.preprocess(root, tmp_path / "a.zarr", model=model, store="uvmap", workers=1, progress=False)
    with pytest.raises(ValueError, match="uv"):
        w300lp.preprocess(root, tmp_path / "b.zarr", model=model, store="uvmap", uv=stores["uv"][:-1], workers=1,
                          progress=False)
    with pytest.raises(ValueError, match="uv"):
        w300lp.preprocess(root, tmp_path / "c.zarr", model=model, uv=stores["uv"], workers=1, progress=False)
    with pytest.raises(ValueError, match="uv"):
        w300lp.preprocess(root, tmp_path / "d.zarr", model=model, store="uvmap", uv=stores["uv"] * 2, workers=1,
                          progress=False)
    assert not any(tmp_path.iterdir())


def test_uvmap_from_the_command_line_with_a_uv_file(stores, model, tmp_path, capsys):
    from bfm.formats import save_npz, write_uv
    from meshkit.cli import main

    save_npz(tmp_path / "m.npz", model)
    write_uv(tmp_path / "BFM_UV.mat", stores["uv"])
    out = tmp_path / "s.zarr"
    common = ["preprocess-300wlp", str(stores["root"]), "--model", str(tmp_path / "m.npz"), "--size", str(SIZE),
              "--workers", "1", "--block-size", "2", "--no-progress"]
    uv_file = str(tmp_path / "BFM_UV.mat")
    assert main(common + ["--out", str(out), "--store", "uvmap"]) == 2  # a real model needs --uv
    assert "--uv" in capsys.readouterr().err
    assert main(common + ["--out", str(tmp_path / "v.zarr"), "--uv", uv_file]) == 2  # --uv without --store uvmap
    assert "--uv" in capsys.readouterr().err
    assert main(common + ["--out", str(out), "--store", "uvmap", "--uv", uv_file]) == 0
    g = w300lp.open_store(out)
    ref = w300lp.open_store(stores["uvmap"])
    assert g["uv_position_map"].shape == (4, 256, 256, 3) and "uv_texture" not in g.array_keys()
    np.testing.assert_array_equal(g["uv_layout"][:], ref["uv_layout"][:])
    assert main(common + ["--out", str(tmp_path / "small.zarr"), "--store", "uvmap", "--uv", uv_file,
                          "--uv-size", "64"]) == 0
    assert w300lp.open_store(tmp_path / "small.zarr")["uv_position_map"].shape == (4, 64, 64, 3)


def test_a_store_remade_in_the_same_process_with_textures_gets_them(stores, model, tmp_path):
    """The per-process layout cache must not carry the settings of an earlier store at the same path."""
    out = tmp_path / "s.zarr"
    kw = dict(model=model, size=SIZE, store="uvmap", uv=stores["uv"], uv_size=M, workers=1, block_size=2, progress=False)
    w300lp.preprocess(stores["root"], out, **kw)
    w300lp.preprocess(stores["root"], out, uv_texture=True, overwrite=True, **kw)
    g = w300lp.open_store(out)
    assert g["uv_texture_mask"][:].mean() > 0.3 and g["uv_texture"][:].max() > 0

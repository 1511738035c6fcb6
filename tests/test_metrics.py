"""meshkit.metrics: hand-computed values on small cases, brute-force loops, and the CED plot file."""

import math

import numpy as np
import pytest

from meshkit import metrics


def _box_pts():
    # a 4 x 1 box: sqrt(w h) = 2
    return np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 1.0], [4.0, 1.0]])


def test_nme_2d_hand_computed():
    gt = _box_pts()
    pred = gt + [3.0, 4.0]  # every point 5 away
    assert math.isclose(metrics.nme_2d(pred, gt)[0], 5.0 / 2.0)
    # one point off by (0, 2), the others exact: mean distance 0.5 -> 0.25
    pred = gt.copy()
    pred[1] += [0.0, 2.0]
    assert math.isclose(metrics.nme_2d(pred, gt)[0], 0.25)
    # a z column is ignored by the 2D variant
    gt3 = np.column_stack([gt, [0.0, 10.0, 20.0, 30.0]])
    assert math.isclose(metrics.nme_2d(np.column_stack([pred, np.zeros(4)]), gt3)[0], 0.25)
    assert metrics.bbox_size(gt3)[0] == 2.0


def test_nme_brute_force_68():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 100, size=(5, 68, 3))
    pred = gt + rng.normal(scale=2.0, size=gt.shape)
    got2, got3 = metrics.nme_2d(pred, gt), metrics.nme_3d(pred, gt, z_align="none")
    for b in range(5):
        w = gt[b, :, 0].max() - gt[b, :, 0].min()
        h = gt[b, :, 1].max() - gt[b, :, 1].min()
        d2 = sum(math.dist(pred[b, k, :2], gt[b, k, :2]) for k in range(68)) / 68
        d3 = sum(math.dist(pred[b, k], gt[b, k]) for k in range(68)) / 68
        assert math.isclose(got2[b], d2 / math.sqrt(w * h), rel_tol=1e-12)
        assert math.isclose(got3[b], d3 / math.sqrt(w * h), rel_tol=1e-12)


def test_nme_3d_and_z_alignment():
    gt = np.column_stack([_box_pts(), [1.0, 2.0, 3.0, 4.0]])
    pred = gt + [0.0, 0.0, 2.0]  # a pure depth offset
    assert math.isclose(metrics.nme_3d(pred, gt, z_align="none")[0], 1.0)
    assert metrics.nme_3d(pred, gt)[0] == 0.0
    assert metrics.nme_3d(pred, gt, z_align="mean")[0] == 0.0
    assert metrics.nme_2d(pred, gt)[0] == 0.0
    # min vs mean alignment differ when the depth shape differs: pred z = (1, 2, 3, 10)
    pred = gt.copy()
    pred[3, 2] = 10.0
    # min: gt z - 1 = (0, 1, 2, 3), pred z - 1 = (0, 1, 2, 9): one point 6 away -> 6 / 4 / 2
    assert math.isclose(metrics.nme_3d(pred, gt)[0], 6 / 4 / 2)
    # mean: gt mean 2.5, pred mean 4: offsets (-1.5, -1.5, -1.5, 4.5) -> (3 * 1.5 + 4.5) / 4 / 2
    assert math.isclose(metrics.nme_3d(pred, gt, z_align="mean")[0], (3 * 1.5 + 4.5) / 4 / 2)
    with pytest.raises(ValueError, match="z_align"):
        metrics.nme_3d(pred, gt, z_align="max")


def test_dense_nme():
    gt = np.column_stack([_box_pts(), np.zeros(4)])
    pred = gt + [0.0, 1.0, 0.0]
    assert math.isclose(metrics.dense_nme(pred, gt)[0], 0.5)
    assert math.isclose(metrics.dense_nme(pred, gt, normalizer=4.0)[0], 0.25)
    pred = gt + [0.0, 0.0, 3.0]
    assert metrics.dense_nme(pred, gt)[0] == 0.0
    assert math.isclose(metrics.dense_nme(pred, gt, dims=3)[0], 1.5)
    with pytest.raises(ValueError, match="normalizer: expected 1 values"):
        metrics.dense_nme(pred, gt, normalizer=[1.0, 2.0])


def test_nme_interocular():
    gt = np.zeros((68, 2))
    gt[:, 0] = np.arange(68) * 0.1
    gt[36] = [0.0, 0.0]
    gt[45] = [6.0, 8.0]  # inter-ocular distance 10
    pred = gt + [1.0, 0.0]
    assert math.isclose(metrics.nme_interocular(pred, gt)[0], 0.1)
    with pytest.raises(ValueError, match="at least 46 landmarks"):
        metrics.nme_interocular(pred[:40], gt[:40])


def test_ced_and_auc_hand_computed():
    e = np.array([0.1, 0.2, 0.3, 0.4])
    t, f = metrics.ced_curve(e, [0.0, 0.1, 0.25, 0.4, 1.0])
    np.testing.assert_array_equal(f, [0.0, 0.25, 0.5, 1.0, 1.0])
    # AUC at 0.4: (1/0.4) * integral of the step CED = (0.3 + 0.2 + 0.1 + 0) / 4 / 0.4
    assert math.isclose(metrics.auc(e, 0.4), 0.375)
    assert metrics.auc(e, 0.05) == 0.0
    assert math.isclose(metrics.auc(np.zeros(3), 0.1), 1.0)
    # agrees with a fine Riemann sum of the curve
    t, f = metrics.ced_curve(e, max_error=0.4, n=400001)
    assert math.isclose(np.trapezoid(f, t) / 0.4, 0.375, abs_tol=1e-5)
    with pytest.raises(ValueError, match="errors: expected finite values >= 0"):
        metrics.auc([0.1, -1.0], 0.1)
    with pytest.raises(ValueError, match="threshold"):
        metrics.auc(e, 0.0)


def test_yaw_bins_edges():
    deg = np.array([10.0, 29.9, 30.0, -45.0, 60.0, 89.0, 95.0, -30.0])
    np.testing.assert_array_equal(metrics.yaw_bins(deg, degrees=True), [0, 0, 1, 1, 2, 2, 2, 1])
    np.testing.assert_array_equal(metrics.yaw_bins(deg, degrees=True, right_closed=True), [0, 0, 0, 1, 1, 2, 2, 0])
    inner = np.array([5.0, -29.0, 31.0, 59.0, -61.0, 89.0])  # away from the edges (radian round trip)
    np.testing.assert_array_equal(metrics.yaw_bins(np.radians(inner)), [0, 0, 1, 1, 2, 2])


def test_yaw_table_hand_computed():
    yaw = np.array([0.0, 10.0, 20.0, 40.0, 50.0, 70.0])
    err = np.array([0.01, 0.02, 0.03, 0.05, 0.07, 0.10])
    t = metrics.yaw_table(err, yaw, degrees=True)
    np.testing.assert_allclose(t.means, [0.02, 0.06, 0.10])
    np.testing.assert_allclose(t.stds, [math.sqrt(2 / 3) * 0.01, 0.01, 0.0], atol=1e-15)
    assert t.counts == (3, 2, 1)
    assert math.isclose(t.mean, 0.06)
    assert math.isclose(t.std, math.sqrt(((0.04) ** 2 + 0 + 0.04**2) / 3))
    md = t.to_markdown("ours")
    assert "| ours | 2.000 | 6.000 | 10.000 | 6.000 |" in md
    with pytest.raises(ValueError, match="samples in every yaw bin"):
        metrics.yaw_table(err[:3], yaw[:3], degrees=True)


def test_yaw_table_balanced():
    rng = np.random.default_rng(0)
    # bin 0: 50 samples, bin 1: 20, bin 2: 5; errors in bin 0 are k * 0.001 so any subset mean is checkable
    yaw = np.concatenate([rng.uniform(0, 29, 50), rng.uniform(31, 59, 20), rng.uniform(61, 89, 5)])
    err = np.concatenate([np.arange(50) * 0.001, np.full(20, 0.05), np.full(5, 0.09)])
    t = metrics.yaw_table(err, yaw, degrees=True, balanced=True, seed=3)
    assert t.counts == (5, 5, 5) and t.balanced
    assert math.isclose(t.means[1], 0.05) and math.isclose(t.means[2], 0.09)
    # the bin-0 mean is the mean of 5 distinct values out of 0, 0.001, ..., 0.049
    s = round(t.means[0] * 5 / 0.001)
    assert math.isclose(t.means[0], s * 0.001 / 5) and 0 + 1 + 2 + 3 + 4 <= s <= 45 + 46 + 47 + 48 + 49
    assert t == metrics.yaw_table(err, yaw, degrees=True, balanced=True, seed=3)  # deterministic
    many = metrics.yaw_table(err, yaw, degrees=True, balanced=True, seed=3, repeats=400)
    assert abs(many.means[0] - 0.0245) < 0.002  # averaging many draws approaches the full-bin mean
    equal = metrics.yaw_table(err[-10:], yaw[-10:] * 0 + np.repeat([10.0, 40.0, 70.0, 10.0, 40.0], 2), degrees=True)
    same = metrics.yaw_table(err[-10:], yaw[-10:] * 0 + np.repeat([10.0, 40.0, 70.0, 10.0, 40.0], 2), degrees=True,
                             balanced=True)
    assert equal.counts == (4, 4, 2) and same.counts == (2, 2, 2)


def test_plot_ced_writes_png(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    out = metrics.plot_ced({"a": rng.uniform(0, 0.08, 100), "b": rng.uniform(0, 0.05, 100)}, tmp_path / "ced.png")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (600, 450)
    with pytest.raises(ValueError, match="curves"):
        metrics.plot_ced({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"path: expected a \.png"):  # refused before drawing, nothing written
        metrics.plot_ced({"a": rng.uniform(0, 0.08, 100)}, tmp_path / "ced.jpg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ced.png"]


def test_bad_input():
    with pytest.raises(ValueError, match=r"pred: expected the same \(B, K\)"):
        metrics.nme_2d(np.zeros((5, 2)), _box_pts())
    with pytest.raises(ValueError, match="gt: expected shape"):
        metrics.nme_2d(np.zeros((4, 2)), np.zeros((4, 5)))
    with pytest.raises(TypeError, match="pred"):
        metrics.nme_2d(np.array([["a", "b"]] * 4), _box_pts())
    with pytest.raises(ValueError, match="non-zero width and height"):
        metrics.nme_2d(np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="finite"):
        metrics.nme_2d(np.full((4, 2), np.nan), _box_pts())
    with pytest.raises(ValueError, match="yaw: expected 3 values"):
        metrics.yaw_table([0.1, 0.2, 0.3], [0.0, 1.0], degrees=True)


def test_evaluate_example_runs(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    pytest.importorskip("zarr")
    path = Path(__file__).resolve().parents[1] / "examples" / "evaluate_nme.py"
    spec = importlib.util.spec_from_file_location("evaluate_nme", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "ced.png"
    assert mod.main(["--per-subset", "6", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3DMM fit, balanced" in text and out.stat().st_size > 1000

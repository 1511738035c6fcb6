"""Face-alignment evaluation: NME (68 landmarks, dense), CED curves, AUC, yaw-binned tables, CED plots.

Numpy only (matplotlib for the optional PNG plot). Errors are fractions (0.035 = 3.5 %); tables
print percent.

Definitions (following 3DDFA's AFLW2000-3D benchmark, ``benchmark_aflw2000.py``):

- Per-sample NME with the bounding-box normaliser: the mean over points of the Euclidean distance
  between predicted and ground-truth points, divided by sqrt(w * h) of the ground truth's 2D (x, y)
  bounding box: w = max x - min x, h = max y - min y.
  ``nme_2d`` measures the distance in x, y (3DDFA's benchmark is 2D only: it slices ``[:2]``);
  ``nme_3d`` in x, y, z with the same 2D-box normaliser (as PRNet / 2DASL report 3D landmark NME on
  AFLW2000-3D). Image-space depth is only defined up to an offset; following the 3DDFA author's
  advice for 3D evaluation (cleardusk/3DDFA issue #75: translate z so that its lowest value is 0),
  ``nme_3d`` by default shifts each point set so its minimum z is 0 (``z_align="min"``; "mean"
  centres z instead, "none" keeps it).
- ``dense_nme``: the same on all mesh vertices, normalised by the dense ground truth's x, y box (or by a
  given per-sample normaliser, e.g. the 68-landmark box).
- ``nme_interocular``: distances divided by the outer inter-ocular distance, |gt[36] - gt[45]| (the
  outer eye corners of the 68-point markup, 0-based), as on 300-W.
- CED: fraction of samples with error <= t, as a function of t. ``auc(errors, threshold)`` is the
  area under the CED on [0, threshold] divided by threshold, computed exactly:
  (1/T) integral_0^T F(t) dt = mean_i max(0, T - e_i) / T.
- Yaw bins: |yaw| in [0, 30), [30, 60), [60, 90] degrees (|yaw| > 90 is counted in the last bin).
  3DDFA's script closes the bins on the right (|yaw| <= 30, 30 < |yaw| <= 60, > 60): pass
  ``right_closed=True`` to reproduce it exactly. The overall figure is the mean of the three bin means
  and its spread the std of the three bin means (3DDFA's ``ana``). AFLW2000-3D's bins are very
  unequal (about 1306 / 462 / 232 samples); the 3DDFA papers also report a yaw-balanced subset. No
  public code for that draw was found, so the balanced option here is defined as: draw the same
  number of samples, the smallest bin's count, from every bin uniformly at random without
  replacement (``seed``), optionally averaging the statistics over ``repeats`` draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .validate import check_array, check_choice, check_float, check_int

__all__ = [
    "bbox_size",
    "nme_2d",
    "nme_3d",
    "dense_nme",
    "nme_interocular",
    "ced_curve",
    "auc",
    "yaw_bins",
    "YawTable",
    "yaw_table",
    "plot_ced",
    "YAW_BINS",
]

YAW_BINS = ((0.0, 30.0), (30.0, 60.0), (60.0, 90.0))


def _points(a, name, dims=None) -> np.ndarray:
    """(B, K, d) or (K, d) float points -> (B, K, d) float64."""
    x = check_array(a, name, [("B", "K", 2), ("B", "K", 3), ("K", 2), ("K", 3)], copy=True)
    if x.ndim == 2:
        x = x[None]
    if x.shape[1] == 0:
        raise ValueError(f"{name}: expected at least one point per sample, got shape {np.shape(a)}")
    if dims is not None and x.shape[2] < dims:
        raise ValueError(f"{name}: expected {dims} coordinates per point, got shape {np.shape(a)}")
    return x


def _pair(pred, gt, dims):
    p = _points(pred, "pred", dims)
    g = _points(gt, "gt", dims)
    if p.shape[:2] != g.shape[:2]:
        raise ValueError(f"pred: expected the same (B, K) as gt {g.shape[:2]}, got {p.shape[:2]}")
    return p[..., :dims], g[..., :dims], g


def _normaliser(n, name, b):
    d = check_array(n, name).reshape(-1)
    if d.size == 1 and b > 1:
        d = np.full(b, d[0])
    if d.shape != (b,):
        raise ValueError(f"{name}: expected {b} values (one per sample), got shape {np.shape(n)}")
    if not (np.isfinite(d) & (d > 0)).all():
        raise ValueError(f"{name}: expected finite values > 0, got min {d.min()}")
    return d


def bbox_size(gt) -> np.ndarray:
    """sqrt(w * h) of the x, y bounding box of each ground-truth point set, (B,) float64.

    gt: (B, K, 2|3) or (K, 2|3). A degenerate box (zero width or height) is a ``ValueError``.
    """
    g = _points(gt, "gt")
    w = g[..., 0].max(1) - g[..., 0].min(1)
    h = g[..., 1].max(1) - g[..., 1].min(1)
    s = np.sqrt(w * h)
    if not (s > 0).all():
        i = int(np.flatnonzero(~(s > 0))[0])
        raise ValueError(f"gt: expected a bounding box of non-zero width and height, got w={w[i]}, h={h[i]} in sample {i}")
    return s


def _mean_dist(p, g):
    return np.sqrt(((p - g) ** 2).sum(-1)).mean(1)


def nme_2d(pred, gt) -> np.ndarray:
    """Per-sample 2D NME normalised by sqrt(w h) of gt's x, y box. pred, gt: (B, K, 2|3). Returns (B,)."""
    p, g, full = _pair(pred, gt, 2)
    return _mean_dist(p, g) / bbox_size(full)


def nme_3d(pred, gt, *, z_align: str = "min") -> np.ndarray:
    """Per-sample 3D NME (x, y, z distances) normalised by sqrt(w h) of gt's x, y box. pred, gt: (B, K, 3).

    ``z_align``: "min" shifts each point set so its lowest z is 0 (default, 3DDFA's advice), "mean"
    subtracts each set's mean z, "none" compares z as given.
    """
    check_choice(z_align, "z_align", ("min", "mean", "none"))
    p, g, full = _pair(pred, gt, 3)
    if z_align != "none":
        p = p.copy()
        g = g.copy()
        ref = np.min if z_align == "min" else np.mean
        p[..., 2] -= ref(p[..., 2], axis=1, keepdims=True)
        g[..., 2] -= ref(g[..., 2], axis=1, keepdims=True)
    return _mean_dist(p, g) / bbox_size(full)


def dense_nme(pred, gt, *, dims: int = 2, normalizer=None) -> np.ndarray:
    """Per-sample NME over all vertices. pred, gt: (B, N, 3) (or 2). Returns (B,).

    Parameters
    ----------
    dims : 2 (x, y) or 3 (x, y, z) distances.
    normalizer : (B,) or scalar, optional; default sqrt(w h) of the dense gt's x, y box.
    """
    dims = check_int(dims, "dims", minimum=2, maximum=3)
    p, g, full = _pair(pred, gt, dims)
    d = bbox_size(full) if normalizer is None else _normaliser(normalizer, "normalizer", p.shape[0])
    return _mean_dist(p, g) / d


def nme_interocular(pred, gt, *, dims: int = 2, left: int = 36, right: int = 45) -> np.ndarray:
    """Per-sample NME normalised by the outer inter-ocular distance |gt[left] - gt[right]| (68-point markup).

    pred, gt: (B, 68, 2|3). ``dims`` = 2 or 3 coordinates in both the error and the normaliser. Returns (B,).
    """
    dims = check_int(dims, "dims", minimum=2, maximum=3)
    p, g, _ = _pair(pred, gt, dims)
    if g.shape[1] <= max(left, right):
        raise ValueError(f"gt: expected at least {max(left, right) + 1} landmarks (68-point markup), got {g.shape[1]}")
    io = np.sqrt(((g[:, left] - g[:, right]) ** 2).sum(-1))
    return _mean_dist(p, g) / _normaliser(io, "inter-ocular distance", p.shape[0])


def _errors(errors) -> np.ndarray:
    e = check_array(errors, "errors", finite=False).reshape(-1)
    if e.size == 0:
        raise ValueError("errors: expected at least one value, got an empty array")
    if not (np.isfinite(e) & (e >= 0)).all():
        raise ValueError("errors: expected finite values >= 0")
    return e


def ced_curve(errors, thresholds=None, *, max_error: float | None = None, n: int = 1001):
    """Cumulative error distribution: fraction of samples with error <= t.

    Parameters
    ----------
    errors : (S,) per-sample errors.
    thresholds : (T,) ascending thresholds, optional; default ``n`` points on [0, max_error]
        (max_error defaults to the largest error).

    Returns
    -------
    (thresholds (T,), fractions (T,)) float64.
    """
    e = np.sort(_errors(errors))
    if thresholds is None:
        top = float(e[-1]) if max_error is None else check_float(max_error, "max_error", minimum=0.0, strict_minimum=True)
        t = np.linspace(0.0, top, check_int(n, "n", minimum=2))
    else:
        t = check_array(thresholds, "thresholds", nonempty=True).reshape(-1)
    frac = np.searchsorted(e, t, side="right") / e.size
    return t, frac


def auc(errors, threshold: float) -> float:
    """Area under the CED curve on [0, threshold], divided by threshold (in [0, 1]); exact.

    Equals mean_i max(0, threshold - e_i) / threshold.
    """
    e = _errors(errors)
    t = check_float(threshold, "threshold", minimum=0.0, strict_minimum=True)
    return float(np.maximum(0.0, t - e).mean() / t)


def yaw_bins(yaw, *, degrees: bool = False, right_closed: bool = False) -> np.ndarray:
    """Bin index 0, 1, 2 of each |yaw| in [0, 30), [30, 60), [60, 90] degrees. yaw: (S,), radians unless ``degrees``.

    ``right_closed``: 3DDFA's (0, 30], (30, 60], (60, ...) instead. |yaw| beyond 90 goes to bin 2.
    """
    y = np.abs(check_array(yaw, "yaw").reshape(-1))
    if not degrees:
        y = np.degrees(y)
    if right_closed:
        return (y > 30.0).astype(np.int64) + (y > 60.0)
    return (y >= 30.0).astype(np.int64) + (y >= 60.0)


@dataclass(frozen=True)
class YawTable:
    """NME by yaw bin. Means/stds are fractions; ``counts`` are samples per bin used (per draw)."""

    means: tuple[float, float, float]
    stds: tuple[float, float, float]
    counts: tuple[int, int, int]
    mean: float  # mean of the three bin means
    std: float  # std of the three bin means
    balanced: bool
    repeats: int

    def to_markdown(self, label: str = "method") -> str:
        """A one-row Markdown table in percent: [0,30) | [30,60) | [60,90] | mean | std."""
        head = "| | [0, 30) | [30, 60) | [60, 90] | mean | std |\n|---|---:|---:|---:|---:|---:|\n"
        cells = " | ".join(f"{100 * m:.3f}" for m in (*self.means, self.mean, self.std))
        return head + f"| {label} | {cells} |\n"


def yaw_table(errors, yaw, *, degrees: bool = False, right_closed: bool = False, balanced: bool = False,
              seed: int = 0, repeats: int = 1) -> YawTable:
    """Mean and std of per-sample errors in each yaw bin; overall = mean (std) of the bin means.

    Parameters
    ----------
    errors : (S,) per-sample NME.
    yaw : (S,) yaw angles (radians unless ``degrees``).
    balanced : draw min(bin counts) samples per bin without replacement (rng from ``seed``), average the
        bin statistics over ``repeats`` draws.

    Raises
    ------
    ValueError
        When a bin has no samples.
    """
    e = _errors(errors)
    b = yaw_bins(yaw, degrees=degrees, right_closed=right_closed)
    if b.shape != e.shape:
        raise ValueError(f"yaw: expected {e.size} values (one per error), got {b.size}")
    groups = [e[b == k] for k in range(3)]
    counts = [g.size for g in groups]
    if min(counts) == 0:
        raise ValueError(f"yaw: expected samples in every yaw bin, got counts {counts} for [0,30), [30,60), [60,90]")
    repeats = check_int(repeats, "repeats", minimum=1)
    if not balanced:
        means = [float(g.mean()) for g in groups]
        stds = [float(g.std()) for g in groups]
        used, repeats = counts, 1
    else:
        rng = np.random.default_rng(check_int(seed, "seed", minimum=0))
        m = min(counts)
        ms = np.zeros((repeats, 3))
        ss = np.zeros((repeats, 3))
        for r in range(repeats):
            for k, g in enumerate(groups):
                pick = g[rng.choice(g.size, size=m, replace=False)]
                ms[r, k], ss[r, k] = pick.mean(), pick.std()
        means, stds = ms.mean(0).tolist(), ss.mean(0).tolist()
        used = [m, m, m]
    return YawTable(tuple(means), tuple(stds), tuple(int(c) for c in used), float(np.mean(means)), float(np.std(means)),
                    bool(balanced), repeats)


def plot_ced(curves, path, *, max_error: float = 0.1, title: str = "CED", n: int = 501, percent: bool = True) -> str:
    """Save CED curves as a PNG (matplotlib, Agg canvas; pyplot's global state is not touched).

    Parameters
    ----------
    curves : dict name -> (S,) per-sample errors; the legend shows each curve's AUC at ``max_error``.
    path : output .png path.
    max_error : the x-axis range [0, max_error].

    Returns
    -------
    str, the path written (atomically). Needs matplotlib (the ``viz`` extra): without it, an
    ``ImportError`` says how to install it.
    """
    from ._optional import require

    if not str(path).lower().endswith(".png"):
        raise ValueError(f"path: expected a .png file name (the plot is written as PNG), got {str(path)!r}")
    FigureCanvasAgg = require("matplotlib.backends.backend_agg", "metrics.plot_ced").FigureCanvasAgg
    Figure = require("matplotlib.figure", "metrics.plot_ced").Figure
    if not isinstance(curves, dict) or not curves:
        raise ValueError("curves: expected a non-empty dict name -> per-sample errors")
    top = check_float(max_error, "max_error", minimum=0.0, strict_minimum=True)
    fig = Figure(figsize=(6, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    scale = 100.0 if percent else 1.0
    for name, err in curves.items():
        t, f = ced_curve(err, max_error=top, n=n)
        ax.plot(t * scale, f, label=f"{name} (AUC@{top * scale:g} = {auc(err, top):.3f})")
    ax.set_xlim(0, top * scale)
    ax.set_ylim(0, 1)
    ax.set_xlabel("NME (%)" if percent else "NME")
    ax.set_ylabel("fraction of samples")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    from .io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return str(path)

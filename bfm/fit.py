"""Landmark fitting: pose + identity + expression of a MorphableModel from 2D or 3D landmarks.

This file holds ``fit_landmarks`` and its result dataclass ``LandmarkFit``.

Model of the observations (one face; the batch is handled by stacking every step):

    2D:  x_i = s * R2 @ X_i(alpha) + t2      (scaled orthographic camera, R2 = first two rows of R)
    3D:  x_i = s * R  @ X_i(alpha) + t       (similarity)
    X_i(alpha) = mean_i + A_i @ alpha         (the landmark rows of the model, A_i (3, K))

Objective (per face):

    minimise  sum_i |x_i - s R_d (mean_i + A_i alpha) - t|^2 / (s0 D)^2  +  reg * sum_k (alpha_k / sigma_k)^2

where D is the RMS radius of the mean landmarks (model units) and s0 the initial scale, so the
data term is in fractions of the face size and ``reg`` is dimensionless; sigma are the model's
standard deviations (the eigenvalue prior).

1. Initial pose from the mean landmarks: 2D - least-squares affine camera x ~ P [X; 1] (P 2x4),
   then the nearest scaled rotation of its 2x3 part (SVD: R2 = U V^T, s = mean singular value; the
   3DDFA "P2sRt" idea done with the SVD), translation refitted; 3D - Umeyama similarity.
2. Gauss-Newton on all unknowns together (rotation increments R <- R exp([w]x), log-scale,
   translation, coefficients; Jacobi-scaled normal equations), ``iterations`` steps at most, each
   the best of the step fractions 1, 1/2, 1/4, 1/10 that lowers the objective (never increases
   it); stops early when no item improves. Alternating pose / coefficient solves were tried
   first and crawl along the scale-vs-identity valley; the joint step does not.

Image coordinates: with ``image_height`` the landmarks are taken as 300W-LP image pixels (y down)
and flipped (``y -> h - y - 1``) before fitting, so the returned ``pose_para`` follows the 300W-LP
convention of ``bfm.pose.pose_para_to_image``. For 2D input the depth translation is unobservable
and returned as 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from meshkit.transform import matrix_to_euler
from meshkit.validate import check_float, check_int

from .model import MorphableModel

__all__ = ["fit_landmarks", "LandmarkFit"]


@dataclass(frozen=True)
class LandmarkFit:
    """Result of :func:`fit_landmarks`. Leading batch axis B is absent for unbatched input.

    Attributes
    ----------
    shape : (B, Ks) float64 raw identity coefficients (``model.reconstruct`` units="raw").
    expression : (B, Ke) float64 raw expression coefficients.
    pose_para : (B, 7) float64 300W-LP ``[pitch, yaw, roll, tx, ty, tz, scale]`` (tz = 0 for 2D).
    camera : (B, 3, 4) float64 ``[s R | t]`` (``bfm.pose.pose_para_to_camera(pose_para)``).
    landmarks : (B, L, d) float64 the fitted landmarks, in the input's frame.
    residual : (B,) float64 RMS distance between fitted and given landmarks (input units).
    """

    shape: np.ndarray
    expression: np.ndarray
    pose_para: np.ndarray
    camera: np.ndarray
    landmarks: np.ndarray
    residual: np.ndarray


def fit_landmarks(model: MorphableModel, landmarks, *, n_shape: int = 40, n_expression: int = 10, reg: float = 1e-4,
                  iterations: int = 20, image_height: float | None = None) -> LandmarkFit:
    """Fit pose, identity and expression to 68 (or L) 2D or 3D landmarks; batched.

    Parameters
    ----------
    model : MorphableModel with L landmark indices.
    landmarks : (L, 2), (L, 3), (B, L, 2) or (B, L, 3) float
        Observed landmarks in the model's landmark order (iBUG 68 for the shipped layouts).
    n_shape, n_expression : int
        Leading components to fit (clamped to the model's counts); 40 and 10 as in 3DDFA.
    reg : float >= 0
        Weight of the eigenvalue prior (dimensionless, see the module docstring). 0 is plain
        least squares (needs 2L >= 6 + n_shape + n_expression equations for a unique answer).
    iterations : int >= 1
        Maximum Gauss-Newton steps.
    image_height : float, optional
        Landmarks are 300W-LP image pixels (y down) of an image this tall; see the module docstring.

    Returns
    -------
    LandmarkFit
    """
    if not isinstance(model, MorphableModel):
        raise TypeError(f"model: expected a MorphableModel, got {type(model).__name__}")
    n_lm = len(model.landmarks)
    if n_lm < 6:
        raise ValueError(f"model: expected at least 6 landmark indices to fit, got {n_lm}")
    x = np.asarray(landmarks)
    if x.dtype == object or x.dtype.kind not in "fiu":
        raise TypeError(f"landmarks: expected a float array of shape (B, {n_lm}, 2|3), got dtype {x.dtype}")
    batched = x.ndim == 3
    if x.ndim not in (2, 3) or x.shape[-2] != n_lm or x.shape[-1] not in (2, 3) or (batched and x.shape[0] == 0):
        raise ValueError(f"landmarks: expected shape ({n_lm}, 2|3) or (B, {n_lm}, 2|3) for this model's {n_lm} "
                         f"landmarks, got {x.shape}")
    x = np.array(x, dtype=np.float64, ndmin=3)
    if not np.isfinite(x).all():
        raise ValueError(f"landmarks: expected finite values, got {int((~np.isfinite(x)).sum())} NaN/inf value(s)")
    ks = min(check_int(n_shape, "n_shape", minimum=0), model.n_shape)
    ke = min(check_int(n_expression, "n_expression", minimum=0), model.n_expression)
    lam = check_float(reg, "reg", minimum=0.0)
    n_it = check_int(iterations, "iterations", minimum=1)
    h = None if image_height is None else check_float(image_height, "image_height", minimum=0.0, strict_minimum=True)
    d = x.shape[-1]
    if h is not None:
        x = x.copy()
        x[..., 1] = h - x[..., 1] - 1.0
    if lam == 0 and d * n_lm < 6 + ks + ke:
        raise ValueError(f"reg: 0 needs at least {6 + ks + ke} landmark coordinates for {ks}+{ke} coefficients, "
                         f"got {d * n_lm}; use reg > 0")

    rows = (3 * model.landmarks[:, None] + np.arange(3)).reshape(-1)
    mean_l = model.mean[model.landmarks].astype(np.float64)  # (L, 3)
    basis = np.concatenate([model.shape_basis[rows, :ks], model.expression_basis[rows, :ke]], axis=1)
    a = basis.astype(np.float64).reshape(n_lm, 3, ks + ke)  # (L, 3, K)
    sigma = np.concatenate([model.shape_std[:ks], model.expression_std[:ke]]).astype(np.float64)
    radius = float(np.sqrt(((mean_l - mean_l.mean(0)) ** 2).sum(1).mean()))
    b = x.shape[0]
    k = ks + ke
    alpha = np.zeros((b, k))
    prior = lam / sigma**2 if k else np.zeros(0)

    # initial pose from the mean landmarks, then Gauss-Newton on (rotation, log-scale, translation,
    # coefficients) of the regularised objective, with a per-item step search
    s, rot, t = (_pose_2d if d == 2 else _pose_3d)(np.broadcast_to(mean_l, (b, n_lm, 3)), x)
    w = 1.0 / (s * radius) ** 2  # data term in units of the face size (fixed from the initial scale)
    prior_full = np.concatenate([np.zeros(4 + d), prior])
    state = (rot, s, t, alpha)
    cost = _cost(state, mean_l, a, x, w, prior, d)
    for _ in range(n_it):
        rot, s, t, alpha = state
        verts = mean_l[None] + np.einsum("lck,bk->blc", a, alpha)
        rd = rot[:, :d, :]
        rx = np.einsum("bdc,blc->bld", rd, verts)
        r = x - (s[:, None, None] * rx + t[:, None, :])
        j_w = -s[:, None, None, None] * np.einsum("bdc,blce->blde", rd, _skew(verts))  # d/d(rotation increment)
        j_s = (s[:, None, None] * rx)[..., None]  # d/d(log scale)
        j_t = np.broadcast_to(np.eye(d), (b, n_lm, d, d))
        j_a = s[:, None, None, None] * np.einsum("bdc,lck->bldk", rd, a)
        jac = np.concatenate([j_w, j_s, j_t, j_a], axis=3).reshape(b, n_lm * d, -1)
        p_all = np.concatenate([np.zeros((b, 4 + d)), alpha], axis=1)
        lhs = w[:, None, None] * np.einsum("bnk,bnj->bkj", jac, jac) + np.diag(prior_full)[None]
        rhs = w[:, None] * np.einsum("bnk,bn->bk", jac, r.reshape(b, -1)) - prior_full * p_all
        # Jacobi scaling (rotation, scale, translation and raw coefficients differ by many orders of
        # magnitude), plus a tiny relative damping so that unobservable directions stay put
        dg = np.sqrt(np.maximum(np.einsum("bii->bi", lhs), 1e-300))
        lhs_n = lhs / dg[:, :, None] / dg[:, None, :] + 1e-10 * np.eye(lhs.shape[1])[None]
        step = np.linalg.solve(lhs_n, (rhs / dg)[..., None])[..., 0] / dg
        best, best_cost = state, cost
        for frac in (1.0, 0.5, 0.25, 0.1):
            cand = _apply(state, frac * step, d)
            c = _cost(cand, mean_l, a, x, w, prior, d)
            better = c < best_cost
            best = tuple(np.where(better.reshape((-1,) + (1,) * (bv.ndim - 1)), cv, bv)
                         for cv, bv in zip(cand, best, strict=True))
            best_cost = np.where(better, c, best_cost)
        if np.allclose(best_cost, cost, rtol=1e-12, atol=0):
            state, cost = best, best_cost
            break
        state, cost = best, best_cost
    rot, s, t, alpha = state
    verts = mean_l[None] + np.einsum("lck,bk->blc", a, alpha)
    fitted = s[:, None, None] * np.einsum("bdc,blc->bld", rot[:, :d, :], verts) + t[:, None, :]
    resid = np.sqrt(((fitted - x) ** 2).sum(-1).mean(-1))
    t3 = np.zeros((b, 3))
    t3[:, :d] = t
    pose_para = np.concatenate([matrix_to_euler(rot, convention="3ddfa"), t3, s[:, None]], axis=1)
    camera = np.concatenate([s[:, None, None] * rot, t3[:, :, None]], axis=2)
    if h is not None:
        fitted[..., 1] = h - fitted[..., 1] - 1.0
    out = LandmarkFit(shape=alpha[:, :ks], expression=alpha[:, ks:], pose_para=pose_para, camera=camera,
                      landmarks=fitted, residual=resid)
    if not batched:
        out = LandmarkFit(*(getattr(out, f)[0] for f in ("shape", "expression", "pose_para", "camera", "landmarks",
                                                          "residual")))
    return out


def _skew(v: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) cross-product matrices [v]x (so [v]x w = v x w)."""
    z = np.zeros(v.shape[:-1])
    x, y, w = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([np.stack([z, -w, y], -1), np.stack([w, z, -x], -1), np.stack([-y, x, z], -1)], -2)


def _rodrigues(w: np.ndarray) -> np.ndarray:
    """(B, 3) rotation vectors -> (B, 3, 3) rotation matrices exp([w]x)."""
    theta = np.linalg.norm(w, axis=1)
    k = _skew(w)
    small = theta < 1e-12
    th = np.where(small, 1.0, theta)
    a = np.where(small, 1.0, np.sin(th) / th)
    b = np.where(small, 0.5, (1.0 - np.cos(th)) / th**2)
    return np.eye(3)[None] + a[:, None, None] * k + b[:, None, None] * (k @ k)


def _apply(state, step: np.ndarray, d: int):
    """Update (R, s, t, alpha) by a step (rotation increment on the right, log-scale, t, alpha)."""
    rot, s, t, alpha = state
    return (rot @ _rodrigues(step[:, :3]), s * np.exp(step[:, 3]), t + step[:, 4:4 + d], alpha + step[:, 4 + d:])


def _cost(state, mean_l, a, x, w, prior, d) -> np.ndarray:
    """Per-item objective: w * |residual|^2 + sum(prior * alpha^2)."""
    rot, s, t, alpha = state
    verts = mean_l[None] + np.einsum("lck,bk->blc", a, alpha)
    proj = s[:, None, None] * np.einsum("bdc,blc->bld", rot[:, :d, :], verts) + t[:, None, :]
    return w * ((x - proj) ** 2).sum((1, 2)) + (prior * alpha**2).sum(1)


def _pose_2d(verts: np.ndarray, x: np.ndarray):
    """Scaled orthographic pose per batch item: (s (B,), R (B, 3, 3), t (B, 2))."""
    b, n, _ = verts.shape
    h = np.concatenate([verts, np.ones((b, n, 1))], axis=2)  # (B, L, 4)
    # affine camera by least squares: P^T = (H^T H)^-1 H^T x, normalised for conditioning
    scale = np.sqrt((verts**2).sum(-1).mean(-1))[:, None, None] + 1e-30
    hn = h / np.concatenate([np.broadcast_to(scale, (b, 1, 3)), np.ones((b, 1, 1))], axis=2)
    pt = _lstsq(hn, x)
    m = (pt[:, :3, :] / scale).transpose(0, 2, 1)  # (B, 2, 3)
    u, sv, vt = np.linalg.svd(m, full_matrices=False)
    r2 = u @ vt  # nearest matrix with orthonormal rows
    s = sv.mean(axis=1)
    r3 = np.cross(r2[:, 0], r2[:, 1])
    rot = np.concatenate([r2, r3[:, None, :]], axis=1)
    t = (x - s[:, None, None] * np.einsum("bdc,blc->bld", r2, verts)).mean(axis=1)
    return s, rot, t


def _lstsq(h: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Batched least squares min |h p - x| via the normal equations with a tiny ridge: (B, 4, d)."""
    hth = np.einsum("bni,bnj->bij", h, h)
    hth += 1e-12 * np.trace(hth, axis1=1, axis2=2)[:, None, None] * np.eye(h.shape[2])[None]
    return np.linalg.solve(hth, np.einsum("bni,bnd->bid", h, x))


def _pose_3d(verts: np.ndarray, x: np.ndarray):
    """Umeyama similarity per batch item: (s (B,), R (B, 3, 3), t (B, 3))."""
    mu_v, mu_x = verts.mean(1), x.mean(1)
    cv, cx = verts - mu_v[:, None], x - mu_x[:, None]
    cov = np.einsum("bli,blj->bij", cx, cv) / verts.shape[1]
    u, dd, vt = np.linalg.svd(cov)
    sign = np.ones((len(verts), 3))
    sign[:, 2] = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    rot = (u * sign[:, None, :]) @ vt
    var = (cv**2).sum(-1).mean(-1)
    s = (dd * sign).sum(1) / var
    t = mu_x - s[:, None] * np.einsum("bij,bj->bi", rot, mu_v)
    return s, rot, t

"""A synthetic face model and synthetic 300W-LP samples, written in the real file layouts.

The real Basel Face Model is licensed and never shipped; this module makes a stand-in with the
same sizes and file layouts for tests and for ``meshkit demo``.

The geometry, ``face_template`` and ``face_height``, is pure geometry and lives in
``meshkit.synthetic``; it is re-exported here. Coordinates are in BFM units (micrometres), x right,
y up, z towards the viewer.
"""

from __future__ import annotations

import numpy as np

from meshkit.synthetic import DEPTH, HALF_HEIGHT, HALF_WIDTH, _zip_rows, face_height, face_template
from meshkit.validate import check_int, check_vertices

__all__ = [
    "write_synthetic_300wlp",
    "face_template",
    "face_height",
    "LANDMARK_UV",
    "landmark_indices",
    "synthetic_model",
    "synthetic_model_full",
    "small_model",
    "write_bfm2009",
    "write_face3d_mat",
    "write_3ddfa_pkl",
    "write_bfm2017_h5",
]

# =============================================================================================
# The synthetic Morphable Model on the template, and writers for the real file layouts.
#
# Bases are smooth vector fields evaluated at the vertex positions: each component is a random
# combination of low-frequency cosines cos(pi a s) cos(pi b t) over the face's bounding box
# (s, t in [0, 1]), weighted towards low frequencies, then orthonormalised over the model's
# vertices (Cholesky of the Gram matrix, computed in the small cosine domain). Expression fields
# are multiplied by a mask concentrated on the mouth, eyes and brows. Standard deviations decay
# with the component index, so the leading components dominate as in a real PCA model.

# iBUG 68-point landmark positions in normalised face coordinates (u = x / HALF_WIDTH, v = y /
# HALF_HEIGHT), placed on face_height's features. Subject's right = image left = -x.
_JAW = [(-0.93, 0.20), (-0.93, 0.05), (-0.91, -0.10), (-0.88, -0.25), (-0.82, -0.40), (-0.72, -0.55),
        (-0.58, -0.70), (-0.38, -0.83), (0.0, -0.92), (0.38, -0.83), (0.58, -0.70), (0.72, -0.55),
        (0.82, -0.40), (0.88, -0.25), (0.91, -0.10), (0.93, 0.05), (0.93, 0.20)]
_BROWS = [(-0.62, 0.30), (-0.52, 0.35), (-0.40, 0.37), (-0.28, 0.36), (-0.16, 0.33),
          (0.16, 0.33), (0.28, 0.36), (0.40, 0.37), (0.52, 0.35), (0.62, 0.30)]
_NOSE = [(0.0, 0.18), (0.0, 0.06), (0.0, -0.08), (0.0, -0.27),
         (-0.13, -0.36), (-0.065, -0.375), (0.0, -0.385), (0.065, -0.375), (0.13, -0.36)]
_EYES = [(-0.50, 0.18), (-0.42, 0.225), (-0.30, 0.225), (-0.22, 0.18), (-0.30, 0.14), (-0.42, 0.14),
         (0.22, 0.18), (0.30, 0.225), (0.42, 0.225), (0.50, 0.18), (0.42, 0.14), (0.30, 0.14)]
_MOUTH = [(-0.28, -0.545), (-0.18, -0.495), (-0.08, -0.475), (0.0, -0.485), (0.08, -0.475), (0.18, -0.495),
          (0.28, -0.545), (0.18, -0.605), (0.08, -0.635), (0.0, -0.645), (-0.08, -0.635), (-0.18, -0.605),
          (-0.22, -0.545), (-0.08, -0.53), (0.0, -0.53), (0.08, -0.53), (0.22, -0.545),
          (0.08, -0.565), (0.0, -0.565), (-0.08, -0.565)]
#: The 68 iBUG landmark positions (u, v) in normalised face coordinates, in iBUG order:
#: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67.
LANDMARK_UV = np.array(_JAW + _BROWS + _NOSE + _EYES + _MOUTH, dtype=np.float64)

N_FULL_EXTRA = 275  # 53,490 - 53,215: vertices the BFM2009 full model has beyond the trimmed one


def landmark_indices(vertices) -> np.ndarray:
    """68 vertex indices at the iBUG landmark positions of a face_template-like mesh.

    Each landmark takes the vertex nearest (in x, y) to its position in :data:`LANDMARK_UV`,
    landmarks in order, a vertex used once at most (the nearest free vertex otherwise).

    Parameters
    ----------
    vertices : (V, 3) float, V >= 68

    Returns
    -------
    (68,) int64
    """
    v = check_vertices(vertices, "vertices")
    targets = LANDMARK_UV * [HALF_WIDTH, HALF_HEIGHT]
    if len(v) < len(targets):
        raise ValueError(f"vertices: expected at least {len(targets)} vertices (one per landmark), got {len(v)}")
    free = np.ones(len(v), dtype=bool)
    out = np.empty(len(targets), np.int64)
    for i, t in enumerate(targets):
        d = np.hypot(v[:, 0] - t[0], v[:, 1] - t[1])
        d[~free] = np.inf
        out[i] = int(np.argmin(d))
        free[out[i]] = False
    return out


def _neck_vertices(vertices: np.ndarray, faces: np.ndarray, n_extra: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_extra`` extra vertices in rows below the chin row, zipped to it and to each other (the
    neck of the 'full' model that trimming removes). Returns (extra vertices, extra faces) with
    extra vertex ids numbered from len(vertices)."""
    n = len(vertices)
    y = vertices[:, 1]
    bottom = np.flatnonzero(np.isclose(y, y.min()))
    bottom = bottom[np.argsort(vertices[bottom, 0], kind="stable")]
    width = max(3, len(bottom))
    n_rows = max(1, int(np.ceil(n_extra / width)))
    counts = np.full(n_rows, n_extra // n_rows)
    counts[: n_extra % n_rows] += 1
    if counts.min() < 2:
        raise ValueError(f"n_extra: too few extra vertices ({n_extra}) for a neck strip")
    dy = (HALF_HEIGHT * 1.94) / 280.0
    x0, x1 = vertices[bottom, 0].min(), vertices[bottom, 0].max()
    rows_ids, rows_u, pts = [bottom], [np.linspace(0, 1, len(bottom))], []
    start = n
    for r, c in enumerate(counts):
        u = np.linspace(0.0, 1.0, int(c))
        shrink = 1.0 - 0.1 * (r + 1) / n_rows
        xs = 0.5 * (x0 + x1) + (x0 + (x1 - x0) * u - 0.5 * (x0 + x1)) * shrink
        ys = np.full(int(c), y.min() - dy * (r + 1))
        pts.append(np.stack([xs, ys, face_height(xs, ys) - 2_000.0 * (r + 1)], axis=1))
        rows_ids.append(np.arange(start, start + int(c)))
        rows_u.append(u)
        start += int(c)
    tris: list = []
    for r in range(n_rows):
        _zip_rows(rows_ids[r], rows_ids[r + 1], rows_u[r], rows_u[r + 1], tris)
    return np.concatenate(pts), np.asarray(tris, dtype=np.int64)


def _cos_features(xy: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """(P, M) cosines cos(pi a s) cos(pi b t) at (s, t) = xy mapped from the face box to [0, 1]."""
    s = (xy[:, 0] / HALF_WIDTH + 1.0) / 2.0
    t = (xy[:, 1] / HALF_HEIGHT + 1.0) / 2.0
    return np.cos(np.pi * s[:, None] * freqs[None, :, 0]) * np.cos(np.pi * t[:, None] * freqs[None, :, 1])


def _frequencies(m: int) -> np.ndarray:
    """The m lowest non-zero (a, b) integer frequency pairs by a^2 + b^2 (stable order)."""
    k = int(np.ceil(np.sqrt(m))) + 2
    a, b = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    pairs = np.stack([a.ravel(), b.ravel()], axis=1)
    order = np.lexsort((pairs[:, 1], pairs[:, 0], (pairs**2).sum(1)))
    return pairs[order[1:m + 1]].astype(np.float64)  # skip (0, 0): a constant field is a pure translation


def _smooth_basis(xy_model: np.ndarray, xy_all: np.ndarray, n_comp: int, rng, *, mask_model=None, mask_all=None,
                  dir_weights=(1.0, 1.0, 1.0)) -> np.ndarray:
    """(3P, K) basis of smooth vector fields at ``xy_all``, orthonormal over ``xy_model`` rows.

    Component k = sum_j phi_j(x, y) * g_jk (a 3-vector per j), g ~ N(0, 1) / (1 + |freq_j|)^1.5,
    times an optional mask; then G is replaced by G L^-T with L L^T the Gram matrix over the
    model vertices, so the columns restricted to the model vertices are orthonormal.
    """
    if n_comp == 0:
        return np.zeros((3 * len(xy_all), 0), np.float32)
    m = max(24, int(np.ceil(n_comp / 3 * 1.6)) + 8)
    freqs = _frequencies(m)
    decay = 1.0 / (1.0 + np.hypot(freqs[:, 0], freqs[:, 1])) ** 1.5
    g = rng.standard_normal((3, m, n_comp)) * decay[None, :, None] * np.asarray(dir_weights)[:, None, None]
    phi_m = _cos_features(xy_model, freqs)
    if mask_model is not None:
        phi_m = phi_m * mask_model[:, None]
    gram_phi = phi_m.T @ phi_m  # (M, M): cheap, N * M^2
    gram = sum(g[c].T @ gram_phi @ g[c] for c in range(3))  # (K, K) Gram of the interleaved fields
    lower = np.linalg.cholesky(gram)
    g = _whiten(g, lower)
    phi_a = _cos_features(xy_all, freqs)
    if mask_all is not None:
        phi_a = phi_a * mask_all[:, None]
    out = np.empty((len(xy_all), 3, n_comp), np.float64)
    for c in range(3):
        out[:, c, :] = phi_a @ g[c]
    return out.reshape(3 * len(xy_all), n_comp).astype(np.float32)


def _whiten(g: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """G L^-T for each coordinate block: new columns = old columns combined by inv(L)^T."""
    inv_lt = np.linalg.inv(lower).T  # (K, K)
    return np.einsum("cmk,kj->cmj", g, inv_lt)


def _expression_mask(xy: np.ndarray) -> np.ndarray:
    """Weight concentrated on the mouth (strongest), the eyes and the brows."""
    u, v = xy[:, 0] / HALF_WIDTH, xy[:, 1] / HALF_HEIGHT

    def bump(cu, cv, su, sv):
        return np.exp(-(((u - cu) / su) ** 2) - ((v - cv) / sv) ** 2)

    mouth = 1.0 * bump(0.0, -0.60, 0.42, 0.25)
    eyes = 0.45 * (bump(-0.36, 0.18, 0.20, 0.10) + bump(0.36, 0.18, 0.20, 0.10))
    brows = 0.5 * (bump(-0.38, 0.34, 0.26, 0.09) + bump(0.38, 0.34, 0.26, 0.09))
    return mouth + eyes + brows + 0.02


def _texture_mean(vertices: np.ndarray) -> np.ndarray:
    """A plausible skin colour (0..255 RGB): shaded with depth, redder lips, darker brows."""
    u, v = vertices[:, 0] / HALF_WIDTH, vertices[:, 1] / HALF_HEIGHT
    z = vertices[:, 2] / DEPTH
    base = np.array([205.0, 160.0, 138.0])
    shade = 0.78 + 0.22 * np.clip(z, 0.0, 1.2)
    col = base[None, :] * shade[:, None]
    lips = np.exp(-((u / 0.27) ** 2) - ((v + 0.55) / 0.07) ** 2)
    col = col * (1 - 0.45 * lips[:, None]) + np.array([180.0, 80.0, 85.0]) * 0.45 * lips[:, None]
    brows = np.exp(-(((np.abs(u) - 0.38) / 0.22) ** 2) - ((v - 0.345) / 0.035) ** 2)
    col = col * (1 - 0.6 * brows[:, None]) + np.array([70.0, 50.0, 40.0]) * 0.6 * brows[:, None]
    return np.clip(col, 0.0, 255.0)


def _synthesize(n_vertices: int, n_shape: int, n_expression: int, n_texture: int, seed: int, n_extra: int):
    """(full MorphableModel with n_vertices + n_extra vertices, trim index (n_vertices,) 0-based)."""
    from .model import MorphableModel

    n = check_int(n_vertices, "n_vertices", minimum=100)
    ks = check_int(n_shape, "n_shape", minimum=0)
    ke = check_int(n_expression, "n_expression", minimum=0)
    kt = check_int(n_texture, "n_texture", minimum=0)
    check_int(seed, "seed")
    ne = check_int(n_extra, "n_extra", minimum=0)
    verts, faces = face_template(n)
    if ne:
        extra_v, extra_f = _neck_vertices(verts, faces, ne)
    else:
        extra_v, extra_f = np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    # interleave the extra vertices through the file order (so the trim list is not a prefix):
    # position of model vertex i in the full order = i + (number of extras placed before it)
    n_full = n + ne
    extra_pos = np.round(np.linspace(0, n_full - 1, ne + 2)[1:-1]).astype(np.int64) if ne else np.zeros(0, np.int64)
    is_extra = np.zeros(n_full, bool)
    is_extra[extra_pos] = True
    trim = np.flatnonzero(~is_extra)  # full ids of the model vertices, ascending
    full_of = np.empty(n + ne, np.int64)  # template id (model 0..n-1, extras n..) -> full id
    full_of[:n] = trim
    full_of[n:] = extra_pos
    all_v = np.concatenate([verts, extra_v])
    all_f = np.concatenate([faces, extra_f])
    full_v = np.empty_like(all_v)
    full_v[full_of] = all_v
    full_f = full_of[all_f]

    rng = np.random.default_rng(seed)
    xy_m, xy_a = verts[:, :2], full_v[:, :2]
    shape_basis = _smooth_basis(xy_m, xy_a, ks, rng, dir_weights=(1.0, 1.0, 1.4))
    # std in raw units of an orthonormal basis: the per-vertex displacement of one std is std / sqrt(3N),
    # so scale by sqrt(N / 53215) to keep the same displacement (in micrometres) at every mesh size
    size = np.sqrt(n / 53_215.0)
    shape_std = (size * 1.2e6 / (1.0 + np.arange(ks)) ** 0.8).astype(np.float32)
    mask_m, mask_a = _expression_mask(xy_m), _expression_mask(xy_a)
    mask_a = np.where(is_extra, 0.0, mask_a)  # the expression basis lives on the trimmed vertices only
    expr_basis = _smooth_basis(xy_m, xy_a, ke, rng, mask_model=mask_m, mask_all=mask_a, dir_weights=(0.7, 1.0, 0.8))
    expr_std = (size * 6.0e5 / (1.0 + np.arange(ke)) ** 0.9).astype(np.float32)
    tex = {}
    if kt or n_texture == 0:
        tex_basis = _smooth_basis(xy_m, xy_a, kt, rng)
        tex = dict(texture_mean=_texture_mean(full_v).astype(np.float32), texture_basis=tex_basis,
                   texture_std=(size * 4.0e3 / (1.0 + np.arange(kt)) ** 0.7).astype(np.float32))
    lm_full = full_of[landmark_indices(verts)]
    full = MorphableModel(mean=full_v, shape_basis=shape_basis, shape_std=shape_std, expression_basis=expr_basis,
                          expression_std=expr_std, triangles=full_f, landmarks=lm_full,
                          name=f"synthetic full ({n_full} vertices)", **tex)
    return full, trim


_CACHE: dict = {}


def synthetic_model_full(n_vertices: int = 53_215, n_shape: int = 199, n_expression: int = 29, n_texture: int = 199,
                         seed: int = 0, *, n_extra: int | None = None):
    """The 'full' synthetic model (BFM2009's 53,490 = 53,215 + 275 neck vertices) and its trim list.

    Extra vertices sit in rows below the chin, interleaved through the vertex order; their
    expression rows are zero (the expression basis, like Exp_Pca.bin, lives on the trimmed set).

    Returns
    -------
    (MorphableModel with n_vertices + n_extra vertices, trim (n_vertices,) int64 0-based ascending)
    such that ``full.subset(trim)`` equals :func:`synthetic_model` with the same arguments.
    ``n_extra`` defaults to 275 for the default size, else round(275 * n_vertices / 53215), >= 6.
    """
    if n_extra is None:
        n_extra = N_FULL_EXTRA if n_vertices == 53_215 else max(6, int(round(N_FULL_EXTRA * n_vertices / 53_215)))
    key = (n_vertices, n_shape, n_expression, n_texture, seed, n_extra)
    if key not in _CACHE:
        _CACHE.clear()  # keep at most one (large) model cached
        _CACHE[key] = _synthesize(n_vertices, n_shape, n_expression, n_texture, seed, n_extra)
    return _CACHE[key]


def synthetic_model(n_vertices: int = 53_215, n_shape: int = 199, n_expression: int = 29, n_texture: int = 199,
                    seed: int = 0):
    """A synthetic Morphable Model on :func:`face_template` with the BFM's sizes.

    Mean = the template (BFM units); ``n_shape`` smooth identity fields (orthonormal columns, std
    c * 1.2e6 / (1 + k)^0.8 with c = sqrt(n_vertices / 53215), i.e. about 3 mm per vertex for the
    first component at any size), ``n_expression`` fields concentrated on the mouth, eyes and brows
    (std c * 6e5 / (1 + k)^0.9), a skin-coloured texture mean (0..255) with ``n_texture`` smooth
    colour fields (std c * 4e3 / (1 + k)^0.7), the template's triangles, and 68 iBUG landmarks
    (:func:`landmark_indices`). Deterministic for a given ``seed``.

    Use ``synthetic_model(2000, 40, 10, 20)`` (or :func:`small_model`) for fast tests.

    Returns
    -------
    MorphableModel named "synthetic".
    """
    full, trim = synthetic_model_full(n_vertices, n_shape, n_expression, n_texture, seed)
    return full.subset(trim, name="synthetic")


def small_model(seed: int = 0):
    """A 2,000-vertex synthetic model with 40 shape, 10 expression and 20 texture components."""
    return synthetic_model(2000, 40, 10, 20, seed)


# ---------------------------------------------------------------------------------------------
# the writers of the real layouts live with their readers in bfm.formats; re-exported here because
# callers (meshkit bfm convert, tests, README) have always found them in bfm.synthetic
from .formats import write_3ddfa_pkl, write_bfm2009, write_bfm2017_h5, write_face3d_mat  # noqa: E402

# the synthetic 300W-LP tree writer lives in its own module (it renders images); re-exported here so
# that everything synthetic is found in bfm.synthetic
from .synthetic_300wlp import write_synthetic_300wlp  # noqa: E402

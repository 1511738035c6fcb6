"""Lighting of normals + albedo: Lambertian (ambient + one directional light) and 9-coefficient SH.

Both work on any leading shape: per vertex ((V, 3) normals with (V, C) albedo, shade then render
the colours) or per pixel ((H, W, 3) normal maps from ``render_normals`` with (H, W, C) albedo
images). Light directions and normals are in the same frame (for normal maps: image axes x
right, y down, z towards the viewer, so ``(0, 0, 1)`` is a head-on light).
"""

from __future__ import annotations

import numpy as np

from ..validate import check_array, check_float

__all__ = ["lambertian", "sh_basis", "sh_irradiance", "sh_lighting", "SH_BAND_FACTORS"]

#: Clamped-cosine convolution factors per SH band l = 0, 1, 2 (Ramamoorthi & Hanrahan 2001):
#: irradiance E_lm = A_l * L_lm with A_0 = pi, A_1 = 2 pi / 3, A_2 = pi / 4.
SH_BAND_FACTORS = (np.pi, 2.0 * np.pi / 3.0, np.pi / 4.0)
_BAND_OF = np.array([0, 1, 1, 1, 2, 2, 2, 2, 2])


def _check_albedo(albedo, lead: tuple) -> np.ndarray:
    """Albedo (..., C) whose leading shape broadcasts against the normals' ``lead``."""
    a = check_array(albedo, "albedo")
    try:
        np.broadcast_shapes(a.shape[:-1] if a.ndim else (), lead)
    except ValueError:
        raise ValueError(f"albedo: expected shape {lead + ('C',)} (or broadcastable), got shape {a.shape}") from None
    return a


def lambertian(normals, albedo, light_direction=(0.0, 0.0, 1.0), *, ambient: float = 0.3,
               diffuse: float = 0.7) -> np.ndarray:
    """Lambertian shading with an ambient term: ``albedo * (ambient + diffuse * max(0, n . l))``.

    Parameters
    ----------
    normals : (..., 3) float, unit normals (zero vectors, e.g. empty pixels, get the ambient term).
    albedo : (..., C) float, or (C,) for a uniform colour.
    light_direction : (3,) float, the direction TOWARDS the light (normalized here).
    ambient, diffuse : float >= 0

    Returns
    -------
    (..., C) float32.
    """
    n = check_array(normals, "normals", (..., 3))
    a = _check_albedo(albedo, n.shape[:-1])
    d = check_array(light_direction, "light_direction", (3,))
    length = np.linalg.norm(d)
    if length == 0:
        raise ValueError("light_direction: expected a non-zero vector, got (0, 0, 0)")
    amb = check_float(ambient, "ambient", minimum=0.0)
    dif = check_float(diffuse, "diffuse", minimum=0.0)
    cos = np.maximum(n @ (d / length), 0.0)
    return (a * (amb + dif * cos)[..., None]).astype(np.float32)


def sh_basis(normals) -> np.ndarray:
    """The 9 real spherical harmonics of bands 0-2 evaluated at unit directions.

    Order (l, m): (0,0), (1,-1), (1,0), (1,1), (2,-2), (2,-1), (2,0), (2,1), (2,2), i.e.
    ``[c0, c1 y, c1 z, c1 x, c2 xy, c2 yz, c3 (3 z^2 - 1), c2 xz, c4 (x^2 - y^2)]`` with
    c0 = 1 / (2 sqrt(pi)), c1 = sqrt(3 / (4 pi)), c2 = sqrt(15 / pi) / 2, c3 = sqrt(5 / pi) / 4,
    c4 = sqrt(15 / pi) / 4 (orthonormal on the sphere).

    Parameters
    ----------
    normals : (..., 3) float unit vectors.

    Returns
    -------
    (..., 9) float64.
    """
    n = check_array(normals, "normals", (..., 3))
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    c0 = 0.5 / np.sqrt(np.pi)
    c1 = np.sqrt(3.0 / (4.0 * np.pi))
    c2 = 0.5 * np.sqrt(15.0 / np.pi)
    c3 = 0.25 * np.sqrt(5.0 / np.pi)
    c4 = 0.25 * np.sqrt(15.0 / np.pi)
    return np.stack([np.full_like(x, c0), c1 * y, c1 * z, c1 * x, c2 * x * y, c2 * y * z, c3 * (3 * z * z - 1),
                     c2 * x * z, c4 * (x * x - y * y)], axis=-1)


def sh_irradiance(normals, coefficients) -> np.ndarray:
    """Irradiance E(n) of a distant environment given by its 9 SH coefficients L_lm.

    ``E(n) = sum_lm A_l L_lm Y_lm(n)`` with the clamped-cosine factors ``SH_BAND_FACTORS``
    (Ramamoorthi & Hanrahan 2001), where ``L_lm = integral of L(w) Y_lm(w) dw`` over the sphere.
    For ``L(w) = 1`` (uniform white sky) E = pi everywhere.

    Parameters
    ----------
    normals : (..., 3) float unit normals.
    coefficients : (9,) or (9, C) float, the environment's SH projection (per channel).

    Returns
    -------
    (...,) or (..., C) float64.
    """
    c = check_array(coefficients, "coefficients", [(9,), (9, "C")])
    y = sh_basis(normals) * np.asarray(SH_BAND_FACTORS)[_BAND_OF]
    return y @ c


def sh_lighting(normals, albedo, coefficients) -> np.ndarray:
    """Shade a Lambertian surface under SH lighting: ``albedo * E(n)`` (see ``sh_irradiance``).

    Many 3DMM fitting codes fold the factors A_l (and sometimes 1/pi) into their coefficients:
    here the coefficients are the plain projection of the environment, so a white sky L = 1/pi
    (L_00 = 2 / sqrt(pi)) returns the albedo itself.

    Parameters
    ----------
    normals : (..., 3) float unit normals.
    albedo : (..., C) float, or (C,).
    coefficients : (9,) (same for every channel) or (9, C).

    Returns
    -------
    (..., C) float32.
    """
    n = check_array(normals, "normals", (..., 3))
    a = _check_albedo(albedo, n.shape[:-1])
    c = check_array(coefficients, "coefficients", [(9,), (9, "C")])
    e = sh_irradiance(n, c)
    if c.ndim == 1:
        e = e[..., None]
    return (a * e).astype(np.float32)

"""sampling.load validates everything it reads (issue #15): a damaged file is a ValueError naming the
array and what is wrong, never a hierarchy that crashes or silently misbehaves later."""

import json

import numpy as np
import pytest

from tests._helpers import run_snippet


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from meshkit.synthetic import face_template
    from sampling import build_hierarchy

    path = tmp_path_factory.mktemp("h") / "h.npz"
    build_hierarchy(*face_template(400), factors=(4, 4), spiral_length=[9, 7, 5]).save(path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    return path, arrays


def _damaged(tmp_path, arrays, **changes):
    """A copy of the saved arrays with some replaced (None: removed), written to a new .npz."""
    out = dict(arrays)
    for key, value in changes.items():
        key = key.replace("__", "/")
        if value is None:
            del out[key]
        else:
            out[key] = value
    path = tmp_path / "damaged.npz"
    with open(path, "wb") as fh:
        np.savez(fh, **out)
    return path


def _meta(arrays, **changes):
    m = json.loads(str(arrays["metadata"]))
    m.update(changes)
    return np.asarray(json.dumps(m))


def test_an_intact_file_loads(saved):
    from sampling import load

    path, arrays = saved
    h = load(path)
    assert h.n_vertices == [400, 100, 25]
    np.testing.assert_array_equal(h.levels[1].vertices, arrays["level1/vertices"])


def _cases(a):
    """(changes, expected message) pairs built from the intact arrays ``a``."""
    idx = a["up0/indices"].copy()
    idx[5] = 10**9
    ptr = a["level1/laplacian/indptr"].copy()
    ptr[3], ptr[4] = ptr[4], ptr[3] - 1
    faces = a["level0/faces"].copy()
    faces[7, 1] = 400
    v = a["level0/vertices"].copy()
    v[3, 2] = np.nan
    kept = a["kept0"].copy()
    kept[2] += 1
    sp = a["level2/spirals"].copy()
    sp[4, 3] = 99
    data = a["up1/data"].copy()
    data[0] = 0.7
    lap = a["level0/laplacian/data"].copy()
    lap[0] += 0.5
    return [
        ({"up0__indices": idx}, "up0/indices: expected values in [0, 100), got 1000000000"),
        ({"level1__laplacian__indptr": ptr}, "level1/laplacian/indptr: expected row pointers rising"),
        ({"level0__faces": faces}, "level0/faces: expected values in [0, 400), got 400"),
        ({"level0__faces": faces[:, :2].copy()}, "level0/faces: expected shape (n, 3), got"),
        ({"level0__vertices": v}, "level0/vertices: expected finite values, got 1 NaN/inf"),
        ({"level0__vertices": v[:10]}, "level0/vertices: expected shape (400, 3), got (10, 3)"),
        ({"kept0": kept}, "kept0: expected level1/vertices == level0/vertices[kept0]"),
        ({"kept0": kept[::-1].copy()}, "kept0: expected strictly ascending"),
        ({"level2__spirals": sp}, "level2/spirals: expected values in [0, 25), got 99"),
        ({"up1__data": data}, "up1: expected rows summing to 1"),
        ({"level0__laplacian__data": lap}, "level0/laplacian: expected the rescaled normalized Laplacian"),
        ({"down1__data": a["down1/data"] * 2}, "down1: expected the 0/1 selection of kept1"),
        ({"level1__adjacency__data": a["level1/adjacency/data"][:-1].copy()}, "level1/adjacency/data: expected shape"),
        ({"level0__faces": a["level0/faces"].astype(np.float64)}, "level0/faces: expected integer values"),
        ({"up1__shape": np.array([100, 99])}, "up1/shape: expected (100, 25), got (100, 99)"),
        ({"kept1": None}, "kept1: missing"),
        ({"metadata": _meta(a, n_vertices=[400, 100, 26])}, "level2/vertices: expected shape (26, 3)"),
        ({"metadata": _meta(a, lmax=[2.0, float("nan"), 2.0])}, "metadata lmax: expected a list of 3 finite floats"),
        ({"metadata": _meta(a, params={"spiral_length": [9, 7], "padding": "repeat", "laplacian": "normalized"})},
         "metadata spiral_length: expected a list of 3 finite ints"),
    ]


@pytest.mark.parametrize("case", range(19))
def test_a_damaged_file_is_rejected_naming_what_is_wrong(saved, tmp_path, case):
    from sampling import load

    path, arrays = saved
    changes, message = _cases(arrays)[case]
    bad = _damaged(tmp_path, arrays, **changes)
    with pytest.raises(ValueError, match="damaged hierarchy: ") as e:
        load(bad)
    assert message in str(e.value)


def test_corrupted_sparse_indices_never_reach_a_matrix_product(saved, tmp_path):
    # before the fix this loaded and then crashed the process in the first product
    path, arrays = saved
    idx = arrays["up0/indices"].copy()
    idx[::7] = 2**40
    bad = _damaged(tmp_path, arrays, up0__indices=idx)
    code = f"""
import numpy as np
from sampling import load
try:
    h = load({str(bad)!r})
except ValueError as e:
    raise SystemExit("rejected: " + str(e)[-80:])
print((h.up[0] @ np.ones(h.n_vertices[1])).sum())
"""
    r = run_snippet(code)
    assert r.returncode == 1 and "rejected: " in r.stderr and "up0/indices: expected values in [0, 100)" in r.stderr, r.stderr

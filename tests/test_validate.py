import numpy as np
import pytest

from meshkit.validate import check_choice, check_faces, check_float, check_int, check_mesh, check_vertices


def test_vertices_accepts_float32_and_ints_returns_float64():
    v = check_vertices(np.zeros((4, 3), np.float32))
    assert v.dtype == np.float64 and v.shape == (4, 3)
    assert check_vertices([[0, 0, 0], [1, 2, 3]]).dtype == np.float64


def test_vertices_does_not_mutate_input():
    a = np.ones((3, 3), np.float32)
    check_vertices(a)[0, 0] = 5  # a converted copy
    assert a[0, 0] == 1


@pytest.mark.parametrize(
    "bad, exc, words",
    [
        (np.zeros((4, 2)), ValueError, "(V, 3)"),
        (np.zeros((0, 3)), ValueError, "at least one vertex"),
        (np.array([[0, 0, np.nan]]), ValueError, "NaN/inf"),
        (np.array([[0, 0, np.inf]]), ValueError, "row 0"),
        (np.array([["a", "b", "c"]]), TypeError, "float"),
        (np.zeros((3, 3), bool), TypeError, "float"),
        (None, TypeError, "vertices"),
    ],
)
def test_vertices_errors_name_argument_and_expectation(bad, exc, words):
    with pytest.raises(exc) as e:
        check_vertices(bad)
    assert "vertices" in str(e.value) and words in str(e.value)


@pytest.mark.parametrize(
    "bad, exc, words",
    [
        (np.zeros((2, 4), np.int64), ValueError, "triangulate"),
        (np.array([[0, 1, 5]]), ValueError, "[0, 3)"),
        (np.array([[0, -1, 2]]), ValueError, ">= 0"),
        (np.array([[0.0, 1.0, 2.0]]), TypeError, "integer"),
        (np.array([[0, 1, 1]]), ValueError, "distinct"),
        (np.zeros((0, 3), np.int64), ValueError, "at least one face"),
    ],
)
def test_faces_errors(bad, exc, words):
    with pytest.raises(exc) as e:
        check_faces(bad, 3)
    assert "faces" in str(e.value) and words in str(e.value)


def test_mesh_reports_first_bad_face():
    v = np.zeros((4, 3))
    with pytest.raises(ValueError, match="face 1"):
        check_mesh(v, [[0, 1, 2], [1, 2, 9]])


def test_scalars():
    assert check_int(np.int32(3), "k", minimum=1) == 3
    with pytest.raises(TypeError, match="k: expected an integer"):
        check_int(2.0, "k")
    with pytest.raises(TypeError):
        check_int(True, "k")
    with pytest.raises(ValueError, match=">= 1"):
        check_int(0, "k", minimum=1)
    assert check_float(2, "t", minimum=0) == 2.0
    with pytest.raises(ValueError, match="> 0"):
        check_float(0.0, "t", minimum=0.0, strict_minimum=True)
    with pytest.raises(ValueError, match="finite"):
        check_float(float("nan"), "t")
    with pytest.raises(ValueError, match="mode: expected one of"):
        check_choice("x", "mode", ("a", "b"))


# ---------------------------------------------------------------------------------------------
# general array validators


def test_shape_text():
    from meshkit.validate import shape_text

    assert shape_text((..., 3)) == "(..., 3)"
    assert shape_text((None, 3)) == "(?, 3)"
    assert shape_text(("V", "C")) == "(V, C)"
    assert shape_text((9,)) == "(9,)"
    assert shape_text(()) == "()"


@pytest.mark.parametrize(
    "shape, good, bad",
    [
        ((..., 3), [(3,), (5, 3), (2, 4, 3)], [(), (3, 2), (4,)]),
        ((None, 3), [(0, 3), (7, 3)], [(3,), (7, 3, 1), (7, 2)]),
        ([(4,), (4, "C")], [(4,), (4, 1), (4, 9)], [(3,), (4, 2, 1), (3, 4)]),
        ((..., 3, 4), [(3, 4), (6, 3, 4)], [(4, 3), (12,)]),
        ((), [()], [(1,)]),
    ],
)
def test_check_shape_patterns(shape, good, bad):
    from meshkit.validate import check_shape

    for s in good:
        check_shape(np.zeros(s), "a", shape)
    for s in bad:
        with pytest.raises(ValueError, match=rf"a: expected shape .*got shape \({s[0] if s else ''}"):
            check_shape(np.zeros(s), "a", shape)


def test_check_array_converts_and_names_the_argument():
    from meshkit.validate import check_array

    out = check_array([[1, 2, 3]], "pts", (..., 3))
    assert out.dtype == np.float64 and out.flags.c_contiguous
    assert check_array(np.ones((2, 3), np.float64), "pts", dtype=np.float32).dtype == np.float32
    u = np.zeros((2, 2), np.uint8)
    assert check_array(u, "img", dtype=None) is u  # dtype kept, no copy needed
    with pytest.raises(TypeError, match=r"pts: expected a float array of shape \(\.\.\., 3\), got dtype bool"):
        check_array(np.ones((2, 3), bool), "pts", (..., 3))
    with pytest.raises(TypeError, match="pts: expected a float array, got NoneType"):
        check_array(None, "pts")
    with pytest.raises(TypeError, match="got str"):
        check_array("abc", "pts")
    with pytest.raises(TypeError, match="got dtype object"):
        check_array(np.array([1, "a"], dtype=object), "pts")
    with pytest.raises(ValueError, match=r"pts: expected shape \(N, 3\) = rows, got shape \(2, 2\)"):
        check_array(np.zeros((2, 2)), "pts", ("N", 3), what="= rows")
    with pytest.raises(ValueError, match="pts: expected a non-empty array, got shape"):
        check_array(np.zeros((0, 3)), "pts", nonempty=True)


def test_check_array_finite_counts_bad_values():
    from meshkit.validate import check_array

    a = np.array([[0.0, np.nan, 1.0], [np.inf, 2.0, -np.inf]])
    with pytest.raises(ValueError, match=r"x: expected finite values, got 3 NaN/inf value\(s\)"):
        check_array(a, "x")
    assert np.isnan(check_array(a, "x", finite=False)).sum() == 1


def test_check_array_copy_semantics():
    from meshkit.validate import check_array

    a = np.arange(6.0).reshape(2, 3)
    assert check_array(a, "a") is a  # float64 C-contiguous: returned as is
    c = check_array(a, "a", copy=True)
    c[0, 0] = 99.0
    assert a[0, 0] == 0.0 and not np.shares_memory(c, a)
    f = np.asfortranarray(a)
    assert check_array(f, "a").flags.c_contiguous


def test_check_signal():
    from meshkit.validate import check_signal

    assert check_signal(np.arange(5), 5).shape == (5,)
    assert check_signal(np.ones((5, 2), np.float32), 5).dtype == np.float64
    with pytest.raises(ValueError, match=r"x: expected shape \(5,\) or \(5, C\), got shape \(4,\)"):
        check_signal(np.ones(4), 5)
    with pytest.raises(ValueError, match=r"coefficients: expected shape \(3,\) or \(3, C\)"):
        check_signal(np.ones((3, 2, 1)), 3, "coefficients")
    with pytest.raises(ValueError, match="finite"):
        check_signal(np.array([1.0, np.nan]), 2)


def test_check_square_sparse():
    import scipy.sparse as sp

    from meshkit.validate import check_square_sparse

    dense = np.array([[2.0, -1.0], [-1.0, 2.0]])
    out = check_square_sparse(dense)
    assert sp.isspmatrix_csr(out) and out.dtype == np.float64
    assert np.array_equal(out.toarray(), dense)
    assert check_square_sparse(sp.coo_matrix(np.eye(3, dtype=np.int32))).dtype == np.float64
    with pytest.raises(TypeError, match="L: expected a square scipy.sparse matrix, got list"):
        check_square_sparse([[1.0]])
    with pytest.raises(TypeError, match="M: expected a square scipy.sparse matrix"):
        check_square_sparse(np.ones((2, 3)), "M")
    with pytest.raises(ValueError, match=r"L: expected a non-empty square matrix, got shape \(2, 3\)"):
        check_square_sparse(sp.csr_matrix(np.ones((2, 3))))
    with pytest.raises(TypeError, match="real"):
        check_square_sparse(sp.csr_matrix(np.eye(2, dtype=complex)))
    with pytest.raises(ValueError, match=r"L: expected finite entries, got 1 NaN/inf"):
        check_square_sparse(sp.csr_matrix(np.array([[1.0, np.nan], [0.0, 1.0]])))


def test_check_image():
    from meshkit.validate import check_image

    for shape in [(4, 5), (4, 5, 1), (4, 5, 3), (4, 5, 4)]:
        for dtype in (np.uint8, np.float32, bool):
            img = np.zeros(shape, dtype)
            assert check_image(img) is img
    assert np.isnan(check_image(np.full((2, 2), np.nan))).all()  # NaN allowed (to_uint8 maps it to 0)
    with pytest.raises(ValueError, match=r"image: expected shape \(H, W\) or .*\(H, W, 4\), got shape \(4, 5, 2\)"):
        check_image(np.zeros((4, 5, 2)))
    with pytest.raises(ValueError, match="rendered: expected a non-empty array"):
        check_image(np.zeros((0, 5, 3)), "rendered")
    with pytest.raises(TypeError, match="image: expected a numeric array"):
        check_image(np.zeros((2, 2), complex))


def test_check_bool():
    from meshkit.validate import check_bool

    assert check_bool(True, "flag") is True and check_bool(np.bool_(False), "flag") is False
    for bad in (1, 0, "yes", None):
        with pytest.raises(TypeError, match="flag: expected a bool"):
            check_bool(bad, "flag")

import numpy as np
import pytest

from meshkit._validate import check_choice, check_faces, check_float, check_int, check_mesh, check_vertices


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

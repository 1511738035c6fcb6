"""Exports for SpiralNet++ and Neural3DMM, read back exactly the way their code reads them.

SpiralNet++ ``reconstruction/main.py``: ``pickle.load(f, encoding='latin1')``, keys ``vertices``,
``face``, ``adj``, ``down_transform``, ``up_transform``; spirals of levels ``0 .. len(face) - 2``
from ``preprocess_spiral(face, seq_length, vertices, dilation)``; sparse matrices through
``.tocoo()``. Neural3DMM ``neural3DMM.ipynb``: ``pickle.load(fp)``, keys ``M_verts_faces``, ``A``,
``D``, ``U``, ``F``; ``get_adj_trigs(A, F, reference_mesh)`` indexes level i + 1 triangles by
``F[i]``; ``generate_spirals`` gives (1, V + 1, size) arrays with -1 for the zero dummy vertex.
The reference spirals are the real projects' output (tests/fixtures/spirals/README.md).
"""

import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import trimesh

from sampling import build_hierarchy

FIX = Path(__file__).parent / "fixtures" / "spirals"


@pytest.fixture(scope="module")
def face():
    return dict(np.load(FIX / "face.npz"))


@pytest.fixture(scope="module")
def hier(face):
    return build_hierarchy(face["vertices"], face["faces"], factors=(4, 4))


def _read_spiralnet(path):
    with open(path, "rb") as f:  # as reconstruction/main.py does
        return pickle.load(f, encoding="latin1")


def _read_neural3dmm(path):
    with open(path, "rb") as fp:  # as neural3DMM.ipynb does
        return pickle.load(fp)


def _to_sparse(torch, m):
    """SpiralNet++'s utils.to_sparse: COO indices and values from ``.tocoo()``."""
    c = m.tocoo()
    return torch.sparse_coo_tensor(np.vstack([c.row, c.col]), c.data.astype(np.float32), c.shape, check_invariants=True)


def test_spiralnet_export_reads_like_its_main_script(tmp_path, hier, face):
    t = _read_spiralnet(hier.export_spiralnet(tmp_path / "transform.pkl", spirals=True))
    assert set(t) == {"vertices", "face", "adj", "down_transform", "up_transform", "spirals"}
    n = hier.n_vertices
    assert [len(x) for x in t["vertices"]] == n and len(t["face"]) == len(n)
    assert all(f.dtype == np.int64 and f.max() < k for f, k in zip(t["face"], n, strict=True))
    assert all(isinstance(a, sp.csc_matrix) and a.dtype == np.float32 for a in t["adj"] + t["down_transform"])
    assert all(isinstance(u, sp.csc_matrix) and u.dtype == np.float64 for u in t["up_transform"])
    assert [d.shape for d in t["down_transform"]] == [(n[i + 1], n[i]) for i in range(len(n) - 1)]
    # the spirals its script would compute, for levels 0 .. len(face) - 2, are SpiralNet++'s own
    assert len(t["spirals"]) == len(t["face"]) - 1
    np.testing.assert_array_equal(t["spirals"][0], face["spiralnet_L9_d1"])  # its extract_spirals' output
    t2 = _read_spiralnet(hier.export_spiralnet(tmp_path / "t2.pkl", spirals=True, seq_length=12, dilation=2))
    np.testing.assert_array_equal(t2["spirals"][0], face["spiralnet_L12_d2"])
    # plain export: the keys its script reads and nothing else
    assert set(_read_spiralnet(hier.export_spiralnet(tmp_path / "t3.pkl"))) == set(t) - {"spirals"}


def test_spiralnet_export_runs_an_equivalent_model(tmp_path, hier):
    torch = pytest.importorskip("torch")
    from meshkit.nn import SpiralAutoencoder

    t = _read_spiralnet(hier.export_spiralnet(tmp_path / "transform.pkl", spirals=True))
    down = [_to_sparse(torch, d) for d in t["down_transform"]]
    x = torch.from_numpy(t["vertices"][0]).float()
    for d in down:  # its Pool: the sparse matrix applied to the features
        x = torch.sparse.mm(d, x)
    np.testing.assert_allclose(x.numpy(), t["vertices"][-1], rtol=1e-5, atol=1e-6)
    torch.manual_seed(0)
    model = SpiralAutoencoder(t["spirals"], t["down_transform"], t["up_transform"],
                              channels=(16, 16), latent_dim=8)
    y = model(torch.from_numpy(np.stack([t["vertices"][0]] * 2)).float())
    assert tuple(y.shape) == (2, hier.n_vertices[0], 3) and torch.isfinite(y).all()


def _get_adj_trigs(A, F, reference_faces):
    """What Neural3DMM's get_adj_trigs does with the file: neighbours from the dense rows of A,
    triangle lists of level 0 from the template, of level i + 1 from F[i] sized by A[i + 1]."""
    adj = [[np.asarray(a.todense())[i].nonzero()[0] for i in range(a.shape[0])] for a in A]
    trigs = [[[] for _ in range(len(adj[0]))]]
    for t in reference_faces:
        for x in t:
            trigs[0][x].append(tuple(t))
    for i, T in enumerate(F):
        lvl = [[] for _ in range(len(adj[i + 1]))]
        for t in T:
            for x in t:
                lvl[x].append(tuple(t))  # IndexError if F[i] were not the faces of level i + 1
        trigs.append(lvl)
    return adj, trigs


def test_neural3dmm_export_reads_like_its_notebook(tmp_path, hier, face):
    ref = int(face["neural3dmm_reference"][0])
    steps = int(face["neural3dmm_n_steps"])
    p = hier.export_neural3dmm(tmp_path / "downsampling_matrices.pkl", template=tmp_path / "template.obj",
                               reference=ref, step_sizes=steps)
    d = _read_neural3dmm(p)
    assert set(d) == {"M_verts_faces", "A", "D", "U", "F", "spirals", "spiral_sizes", "reference_points"}
    n = hier.n_vertices
    assert [v.shape for v, _ in d["M_verts_faces"]] == [(k, 3) for k in n]
    assert len(d["A"]) == len(n) and len(d["D"]) == len(d["U"]) == len(d["F"]) == len(n) - 1
    for i, f in enumerate(d["F"]):  # levels 1..L, as CoMA's generate_transform_matrices returns
        np.testing.assert_array_equal(f, d["M_verts_faces"][i + 1][1])
    assert all(isinstance(a, sp.csc_matrix) and a.dtype == np.float32 for a in d["A"] + d["D"])
    # the notebook's template, read with trimesh as its ShapeData does
    ref_mesh = trimesh.load(tmp_path / "template.obj", process=False)
    np.testing.assert_allclose(ref_mesh.vertices, face["vertices"], rtol=1e-10)
    np.testing.assert_array_equal(ref_mesh.faces, d["M_verts_faces"][0][1])
    adj, trigs = _get_adj_trigs(d["A"], d["F"], ref_mesh.faces)
    assert [len(a) for a in adj] == [len(t) for t in trigs] == n
    # its reference points per level: the vertex nearest to the level-0 reference
    v0 = face["vertices"][ref]
    assert d["reference_points"] == [[int(np.argmin(np.linalg.norm(v - v0, axis=1)))] for v, _ in d["M_verts_faces"]]
    # level 0 spirals: what its get_spirals computed (fixture), sized mean + 2 std, padded with -1
    raw = [[int(x) for x in row if x != -2] for row in face["neural3dmm"]]
    lengths = np.array([len(r) for r in raw])
    size = int(lengths.mean() + 2 * lengths.std())
    assert d["spiral_sizes"][0] == size
    want = np.full((1, n[0] + 1, size), -1, dtype=np.int64)
    for j, r in enumerate(raw):
        want[0, j, :len(r)] = r[:size]
    np.testing.assert_array_equal(d["spirals"][0], want)
    assert all(s.shape == (1, k + 1, z) for s, k, z in zip(d["spirals"], n, d["spiral_sizes"], strict=True))
    assert all((s[0, -1] == -1).all() for s in d["spirals"])  # the dummy vertex's own row


def test_neural3dmm_export_runs_an_equivalent_model(tmp_path, hier, face):
    torch = pytest.importorskip("torch")
    from meshkit.nn import SpiralAutoencoder, SpiralConv

    d = _read_neural3dmm(hier.export_neural3dmm(tmp_path / "m.pkl", reference=int(face["neural3dmm_reference"][0]),
                                                step_sizes=[2, 2, 1], dilation=[2, 1, 1]))
    n = hier.n_vertices
    tspirals = [torch.from_numpy(s).long() for s in d["spirals"]]  # as the notebook converts spirals_np
    # its SpiralConv: features with a zero dummy row V, gather with -1 -> that row, one linear layer
    torch.manual_seed(0)
    ours = SpiralConv(3, 4, np.where(d["spirals"][0][0, :-1] < 0, n[0], d["spirals"][0][0, :-1]))
    x = torch.randn(2, n[0], 3)
    xp = torch.cat([x, torch.zeros(2, 1, 3)], dim=1)
    g = xp[:, tspirals[0][0].reshape(-1)].reshape(2, n[0] + 1, -1)
    theirs = torch.nn.functional.linear(g, ours.linear.weight, ours.linear.bias)[:, :-1]
    torch.testing.assert_close(ours(x), theirs)
    # an equivalent autoencoder on its spirals, D and U
    sp_levels = [np.where(s[0, :-1] < 0, k, s[0, :-1]) for s, k in zip(d["spirals"], n, strict=True)]
    model = SpiralAutoencoder(sp_levels, d["D"], d["U"], channels=(16, 32), latent_dim=8)
    y = model(torch.from_numpy(np.stack([d["M_verts_faces"][0][0]] * 2)).float())
    assert tuple(y.shape) == (2, n[0], 3) and torch.isfinite(y).all()


def test_plain_neural3dmm_export_keys(tmp_path, hier):
    d = _read_neural3dmm(hier.export_neural3dmm(tmp_path / "m.pkl"))
    assert set(d) == {"M_verts_faces", "A", "D", "U", "F"}
    assert [f.max() < a.shape[0] for f, a in zip(d["F"], d["A"][1:], strict=True)] == [True] * (len(hier.levels) - 1)


def test_hierarchy_in_their_spiral_styles(face):
    h = build_hierarchy(face["vertices"], face["faces"], factors=(4,), spiral_style="spiralnet++")
    np.testing.assert_array_equal(h.levels[0].spirals, face["spiralnet_L9_d1"])
    assert h.params["spiral_style"] == "spiralnet++" and h.params["padding"] == "nearest"
    h = build_hierarchy(face["vertices"], face["faces"], factors=(4,), spiral_length=12, spiral_style="neural3dmm",
                        spiral_reference=int(face["neural3dmm_reference"][0]))
    n = len(face["vertices"])
    want = np.array([[x if x >= 0 else n for x in row[:12]] for row in face["neural3dmm"]])
    np.testing.assert_array_equal(h.levels[0].spirals, want)


@pytest.mark.parametrize("kwargs,msg", [
    (dict(reference=0), "step_sizes: Neural3DMM's spirals need"),
    (dict(reference=0, step_sizes=[1, 1]), "step_sizes: expected one value or 3"),
    (dict(reference=10_000, step_sizes=1), "reference: expected an integer <= 399"),
])
def test_neural3dmm_export_bad_options(tmp_path, hier, kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        hier.export_neural3dmm(tmp_path / "m.pkl", **kwargs)
    assert not (tmp_path / "m.pkl").exists()

"""bfm: 3D Morphable Models (the Basel Face Model and its derivatives).

``MorphableModel`` (bfm.model) holds a linear face model and reconstructs batches of meshes;
``bfm.formats`` reads and writes every real file layout (BFM2009, face3d's BFM.mat, 3DDFA_V2's
pickle, BFM2017 HDF5, canonical .npz; ``load_model``/``save_model``); ``bfm.pose`` holds the
300W-LP and 3DDFA pose conventions; ``bfm.fit`` fits a model to 68 landmarks; ``bfm.synthetic``
makes a stand-in model (the real BFM is licensed and never shipped) that the ``bfm.formats``
writers put in the real layouts.
"""

from . import formats, pose, synthetic
from .fit import LandmarkFit, fit_landmarks
from .formats import load_model, save_model, save_npz
from .model import MorphableModel

__all__ = ["LandmarkFit", "MorphableModel", "fit_landmarks", "formats", "load_model", "pose", "save_model", "save_npz",
           "synthetic"]

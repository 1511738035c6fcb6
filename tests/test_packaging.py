"""The distribution as a user installs it: wheel contents and metadata, `python -m meshkit`."""

from __future__ import annotations

import email
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # the installed setuptools builds it (no network): the same backend pip uses for the editable install
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True)
    (whl,) = out.glob("meshkit-*.whl")
    return whl


def test_wheel_carries_license_and_type_markers(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith("licenses/LICENSE") for n in names), "LICENSE missing from the wheel"
    for pkg in ("meshkit", "bfm", "sampling"):
        assert f"{pkg}/py.typed" in names, f"{pkg}/py.typed missing (PEP 561)"
    assert "meshkit/__main__.py" in names


def test_wheel_metadata_declares_what_works(wheel):
    z = zipfile.ZipFile(wheel)
    meta = email.message_from_bytes(z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))))
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["License-Expression"] == "MIT"
    classifiers = meta.get_all("Classifier")
    assert "Typing :: Typed" in classifiers
    assert "Programming Language :: Python :: 3.11" in classifiers
    # zarr 3 is what the store is written with (zarr 2 lacks the codecs it uses)
    assert any(r.replace(" ", "").startswith("zarr>=3") for r in meta.get_all("Requires-Dist"))
    assert sys.version_info >= (3, 11)


def test_python_dash_m_meshkit_is_the_command():
    out = subprocess.run([sys.executable, "-m", "meshkit", "--version"], capture_output=True, text=True, check=True)
    import meshkit

    assert out.stdout.strip() == f"meshkit {meshkit.__version__}"

"""The distribution: `python -m build` gives a wheel that carries the static files, and it installs and runs.

The wheel goes into a fresh venv with `pip install --no-deps`; the heavy dependencies (torch, cv2, ...)
are borrowed from the running interpreter's site-packages through a .pth file, so the test needs no
network. A .pth line only adds a folder to sys.path (the .pth files inside it are not run), so the
development install there cannot shadow the wheel: `colorize` must come from the new venv.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_NO_INDEX"] = "1"  # install only the wheel we built
    return env


def test_wheel_carries_static_files_and_runs_from_a_fresh_venv(tmp_path):
    src = tmp_path / "src"  # build from a copy: the build leaves build/ and *.egg-info behind
    shutil.copytree(ROOT / "colorize", src / "colorize", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(src)],
                   check=True, capture_output=True, env=_clean_env(), timeout=600)
    wheel = next(dist.glob("*.whl"))
    name = re.search(r'^name = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert name != "colorize"  # taken on PyPI by an unrelated package
    assert wheel.name.startswith(name.replace("-", "_") + "-")
    members = set(zipfile.ZipFile(wheel).namelist())
    static = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "colorize" / "turing" / "static").iterdir())
    assert static and all(s in members for s in static), sorted(members)

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--quiet", str(wheel)],
                   check=True, capture_output=True, env=_clean_env(), timeout=300)

    where = subprocess.run([str(py), "-c", "import colorize; print(colorize.__file__)"], check=True,
                           capture_output=True, text=True, env=_clean_env(), cwd=tmp_path).stdout.strip()
    assert Path(where).resolve().is_relative_to(env_dir.resolve()), where
    assert (Path(where).parent / "turing" / "static" / "index.html").is_file()
    helped = subprocess.run([str(env_dir / "bin" / "colorize"), "--help"], capture_output=True, text=True,
                            env=_clean_env(), cwd=tmp_path, timeout=120)
    assert helped.returncode == 0, helped.stderr
    assert "Usage: colorize" in helped.stdout and "predict" in helped.stdout

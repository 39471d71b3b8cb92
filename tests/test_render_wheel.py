"""The templates ship inside the wheel (they live outside the package in the source tree)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_holds_every_template(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    wheel = next(tmp_path.glob("symbolic-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (ROOT / "templates").rglob("*.j2"):
        assert f"symbolic/templates/{path.relative_to(ROOT / 'templates').as_posix()}" in names
    # and the installed layout loads them: import the templates package from the unpacked wheel
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    code = (
        "import symbolic.render as r, sys; loader = r._loader(); "
        "assert 'FunctionLoader' in type(loader).__name__, loader; "
        "r.environment('latex').get_template('derivation.tex.j2'); r.environment('markdown').get_template('derivation.md.j2')"
    )
    check = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "site")}, capture_output=True
    )
    assert check.returncode == 0, check.stderr.decode()[-2000:]

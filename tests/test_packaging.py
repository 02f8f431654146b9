"""The project as users install it: module layout, packaging and the console scripts."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT

import about

MODULES = sorted(p.stem for p in ROOT.glob("*.py"))
ENTRY = "io_powerwall_scheduler"


def imports_of(module: str) -> set[str]:
    tree = ast.parse((ROOT / f"{module}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_entry_module_is_at_the_top_of_the_import_graph() -> None:
    importers = [m for m in MODULES if m != ENTRY and ENTRY in imports_of(m)]
    assert importers == []


def test_pyproject_lists_every_module_and_the_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["version"] == about.VERSION
    assert sorted(project["tool"]["setuptools"]["py-modules"]) == MODULES
    assert project["project"]["scripts"]["io-powerwall-scheduler"] == f"{ENTRY}:main"
    assert project["project"]["scripts"]["io-powerwall-site-id"] == "get_site_id:main"
    requirements = (ROOT / "requirements.txt").read_text().split()
    assert project["project"]["dependencies"] == requirements


@pytest.mark.skipif(sys.platform != "linux", reason="venv layout")
def test_installed_commands_work_from_a_fresh_venv(tmp_path: Path) -> None:
    """What `pipx install .` gives: the console scripts, with the sample data and the config template."""
    source = tmp_path / "source"  # pip builds in the tree it is given; keep the clone clean
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "tests"))
    venv = tmp_path / "venv"
    # This environment's requests, paho, pip and setuptools stand in for PyPI: no network in tests.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    inner = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(inner, "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(source)],
        check=True,
        capture_output=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = str(venv / "bin" / "io-powerwall-scheduler")
    sample = subprocess.run([command, "--sample"], capture_output=True, text=True, cwd=elsewhere, check=False)
    assert sample.returncode == 0, sample.stderr
    assert "Schedule for the next 24 hours" in sample.stdout
    first = subprocess.run([command, str(elsewhere / "config.txt")], capture_output=True, text=True, check=False)
    assert first.returncode == 2 and (elsewhere / "config.txt").read_text().startswith("# IO Powerwall Scheduler")
    site_id = str(venv / "bin" / "io-powerwall-site-id")
    site = subprocess.run([site_id, "--help"], capture_output=True, text=True, check=False)
    assert site.returncode == 0 and "--write" in site.stdout

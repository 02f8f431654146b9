"""The project as users install it and developers read it: layers, import graph, packaging, scripts."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from conftest import ROOT, Result

import iops

PACKAGE = ROOT / "iops"
SCRIPTS = ("io_powerwall_scheduler.py", "get_site_id.py", "free_electricity.py", "savings_sessions.py")
# Lower layers never import higher ones: core -> nothing of ours, services -> core, app -> both.
LAYERS = {"iops": 0, "iops.core": 1, "iops.services": 2, "iops.app": 3}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def our_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: Mapping[str, Path]) -> set[str]:
    """Every module of ours this file imports, anywhere in it (inside functions and TYPE_CHECKING too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # "from iops.core import tariff" imports the module iops.core.tariff
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    return {name for name in found if name in known}


def layer(module: str) -> int:
    return max(rank for prefix, rank in LAYERS.items() if module == prefix or module.startswith(prefix + "."))


def graph_problems(graph: Mapping[str, set[str]]) -> list[str]:
    """Upward imports and circles in an import graph of our modules (empty when it is a layered tree)."""
    problems = [
        f"{module} (layer {layer(module)}) imports {target} (layer {layer(target)})"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if layer(target) > layer(module)
    ]
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                problems.append("circle: " + " -> ".join([*trail[trail.index(target) :], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return problems


def test_the_import_graph_is_a_layered_tree() -> None:
    known = our_modules()
    graph = {name: imports_of(path, known) - {name} for name, path in known.items()}
    assert graph_problems(graph) == []
    assert len(graph) > 20 and any(graph.values())  # it really read the package


def test_the_graph_check_finds_a_circle_and_an_upward_import() -> None:
    graph = {
        "iops.core.tariff": {"iops.services.http"},  # upward
        "iops.app.a": {"iops.app.b"},
        "iops.app.b": {"iops.app.a"},  # a circle
    }
    problems = graph_problems(graph)
    assert any("iops.core.tariff (layer 1) imports iops.services.http (layer 2)" in p for p in problems)
    assert any(p.startswith("circle: iops.app.a -> iops.app.b -> iops.app.a") for p in problems)


def test_the_scripts_at_the_top_are_thin() -> None:
    known = our_modules()
    assert sorted(p.name for p in ROOT.glob("*.py")) == sorted(SCRIPTS)
    for script in SCRIPTS:
        tree = ast.parse((ROOT / script).read_text(encoding="utf-8"))
        imported = imports_of(ROOT / script, known)
        assert len(imported) == 1 and next(iter(imported)).startswith("iops.app."), script
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)]
        assert functions == [], f"{script} should only import its command's main"


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_answers_help_and_refuses_unknown_flags(script: str, cli: Callable[..., Result]) -> None:
    helped = cli("--help", script=script)
    assert helped.code == 0 and helped.stdout.startswith("usage: ") and "config" in helped.stdout
    assert "cannot be read" not in helped.stdout + helped.stderr
    wrong = cli("config.txt", "--frobnicate", script=script)
    assert wrong.code == 2 and "unrecognized arguments: --frobnicate" in wrong.stderr
    assert wrong.stderr.startswith("usage: ")


def test_pyproject_names_the_package_the_commands_and_the_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["version"] == iops.VERSION
    setuptools = project["tool"]["setuptools"]
    assert setuptools["py-modules"] == []  # no flat modules: the scripts in the clone are not installed
    packages = sorted({module_name(p.parent) for p in PACKAGE.rglob("__init__.py")})
    assert sorted(setuptools["packages"]) == packages
    scripts = project["project"]["scripts"]
    assert set(scripts) == {
        "io-powerwall-scheduler",
        "io-powerwall-site-id",
        "io-powerwall-power-ups",
        "io-powerwall-saving-sessions",
    }
    for target in scripts.values():
        module, _, function = target.partition(":")
        assert callable(getattr(__import__(module, fromlist=[function]), function))
    requirements = (ROOT / "requirements.txt").read_text().split()
    assert project["project"]["dependencies"] == requirements


@pytest.mark.skipif(sys.platform != "linux", reason="venv layout")
def test_pip_install_gives_the_package_and_the_commands_and_nothing_else(tmp_path: Path) -> None:
    """What `pip install .` or `pipx install .` gives: one top-level package and the console scripts,
    with the sample data and the config template."""
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
    before = {p.name for p in Path(inner).iterdir()}
    Path(inner, "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(source)],
        check=True,
        capture_output=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    added = {p.name for p in Path(inner).iterdir()} - before - {"outer.pth", "__pycache__"}
    assert {name for name in added if not name.endswith(".dist-info")} == {"iops"}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = str(venv / "bin" / "io-powerwall-scheduler")
    sample = subprocess.run([command, "--sample"], capture_output=True, text=True, cwd=elsewhere, check=False)
    assert sample.returncode == 0, sample.stderr
    assert "Schedule for the next 24 hours" in sample.stdout
    first = subprocess.run([command, str(elsewhere / "config.txt")], capture_output=True, text=True, check=False)
    assert first.returncode == 2 and (elsewhere / "config.txt").read_text().startswith("# IO Powerwall Scheduler")
    assert "To look around first:  io-powerwall-scheduler --sample" in first.stderr  # as the user runs it
    for name in ("io-powerwall-site-id", "io-powerwall-power-ups", "io-powerwall-saving-sessions"):
        helped = subprocess.run([str(venv / "bin" / name), "--help"], capture_output=True, text=True, check=False)
        assert helped.returncode == 0 and helped.stdout.startswith(f"usage: {name} "), helped.stderr

"""Installed, tunedeck is one namespace: the wheel holds tunedeck/ and its dist-info, nothing named engine or tui."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import tomllib

from tests.helpers import ROOT

SOURCES = ("engine", "tui", "themes")


def test_the_wheel_has_one_top_level_name_and_every_package(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy: building in the checkout would leave build/ and *.egg-info behind
    for name in SOURCES:
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(src)], check=True)  # fmt: skip
    [wheel] = (tmp_path / "dist").glob("tunedeck-*.whl")
    names = zipfile.ZipFile(wheel).namelist()

    top = sorted({n.split("/")[0] for n in names})
    print("top-level names:", top)
    assert top == ["tunedeck", wheel.name.split("-py3")[0] + ".dist-info"]
    packages = {str(Path(n).parent).replace("/", ".") for n in names if n.endswith("/__init__.py")}
    folders = {"tunedeck." + ".".join(p.parent.relative_to(ROOT).parts) for s in SOURCES
               for p in (ROOT / s).rglob("__init__.py")}  # fmt: skip
    assert packages == folders, "pyproject.toml's [tool.setuptools] packages must list every package folder"
    for data in ("tunedeck/tui/app.tcss", "tunedeck/themes/dark.json", "tunedeck/engine/chat_templates/README.md"):
        assert data in names
    assert any(n.startswith("tunedeck/engine/chat_templates/") and n.endswith(".jinja") for n in names)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"tunedeck": "tunedeck.tui.cli.main:main"}


def test_nothing_imports_the_bare_folder_names() -> None:
    """In the checkout engine/ is importable as `engine` too: a module imported both ways would exist twice."""
    bad = []
    for path in [*ROOT.glob("engine/**/*.py"), *ROOT.glob("tui/**/*.py"), *ROOT.glob("themes/*.py"),
                 *ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/*.py")]:  # fmt: skip
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            bad += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.split(".")[0] in SOURCES]
    assert not bad, bad
    module_args = re.compile(r"-m (?:engine|tui)\.")
    for path in (ROOT / "README.md", ROOT / "Makefile"):
        assert not module_args.search(path.read_text()), path

"""The import contract, checked over every module (engine, tui, tests):

- engine/ never imports tui, textual or rich (not even inside a function);
- engine/ has no import cycle, counting imports inside functions;
- the TUI's startup path (tunedeck.tui.app, tunedeck.tui.cli.main, the first frame) and the engine modules it reads
  (recipe, runs, events, methods, data, templates, adapters, estimate) import no ML library;
- test modules share code only through tests/helpers.py, never by importing each other;
- a private name of Textual is used only in tui/textual_compat.py, and one of llama-cpp-python nowhere;
- bench scripts use only public engine names.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

HEAVY = {"torch", "transformers", "trl", "peft", "llama_cpp", "datasets", "bitsandbytes", "accelerate"}
UI = {"tui", "textual", "rich"}
LIGHT_ENGINE = ["tunedeck.engine.recipe", "tunedeck.engine.run.rundir", "tunedeck.engine.run.events", "tunedeck.engine.methods", "tunedeck.engine.data", "tunedeck.engine.templates",
                "tunedeck.engine.model.adapters", "tunedeck.engine.model.estimate", "tunedeck.engine.export.stages"]  # fmt: skip


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _own(name: str) -> str:
    """A module name as the repository spells its folders: tunedeck.engine.run -> engine.run (outside: unchanged)."""
    return name.removeprefix("tunedeck.")


def _imports(path: Path) -> set[str]:
    """Absolute module names ``path`` imports anywhere (in functions too; ``if TYPE_CHECKING:`` excluded), ours
    without their tunedeck. prefix."""
    tree = ast.parse(path.read_text(), filename=str(path))
    typing_only = {
        id(n) for block in ast.walk(tree)
        if isinstance(block, ast.If) and getattr(block.test, "id", None) == "TYPE_CHECKING"
        for stmt in block.body for n in ast.walk(stmt)
    }  # fmt: skip
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {_own(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(_own(node.module))
            found |= {_own(f"{node.module}.{alias.name}") for alias in node.names}
    return found


ENGINE_FILES = sorted((ROOT / "engine").rglob("*.py"))


def test_engine_never_imports_the_ui():
    offenders = {
        _module_name(path): sorted(m for m in _imports(path) if m.split(".")[0] in UI)
        for path in ENGINE_FILES
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_engine_has_no_import_cycle():
    modules = {_module_name(p): p for p in ENGINE_FILES}
    graph = {name: {m for m in _imports(p) if m in modules and m != name} for name, p in modules.items()}
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack, node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*stack, node])):
                return cycle
        state[node] = 2
        return None

    cycles = [cycle for name in sorted(graph) if name not in state and (cycle := visit(name, []))]
    assert not cycles, " -> ".join(cycles[0])


def imported_roots(code: str) -> set[str]:
    """Top-level package names in sys.modules after running ``code`` in a fresh interpreter (tunedeck.tui: tui)."""
    code += "\nimport sys, json; print(json.dumps(sorted({m.removeprefix('tunedeck.').split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_tui_and_the_engine_modules_it_reads_import_no_ml_library():
    roots = imported_roots("import tunedeck.tui.app, tunedeck.tui.cli.main, " + ", ".join(LIGHT_ENGINE))
    assert "textual" in roots  # the probe really imported the app
    assert not roots & HEAVY, sorted(roots & HEAVY)


@pytest.mark.parametrize("module", LIGHT_ENGINE)
def test_engine_modules_import_no_ui_at_run_time(module):
    assert not imported_roots(f"import {module}") & UI


def test_first_frame_of_the_app_pulls_in_no_ml_library(tmp_path: Path) -> None:
    """Start the real app headless to its first frame on the home screen, then look at sys.modules."""
    roots = imported_roots(
        "import asyncio\n"
        "from pathlib import Path\n"
        "from tunedeck.tui.app import TunedeckApp\n"
        "async def main():\n"
        f"    async with TunedeckApp(workspace=Path({str(tmp_path)!r})).run_test(size=(80, 24)) as pilot:\n"
        "        await pilot.pause()\n"
        "asyncio.run(main())"
    )
    assert "textual" in roots and not roots & HEAVY, sorted(roots & HEAVY)


def test_test_modules_share_helpers_only_through_tests_helpers():
    offenders = {
        str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m.startswith("tests.") and m.split(".")[1] != "helpers")
        for p in (ROOT / "tests").rglob("*.py")
    }
    assert not {k: v for k, v in offenders.items() if v}


# Where each library's private names may be used: its compatibility module (None: nowhere).
COMPAT = {"textual": "tui/textual_compat.py", "llama_cpp": None}
# Uses in files this change could not edit; each entry goes once its file goes through the compatibility module.
NOT_YET_MOVED = {
}
OWN_FILES = sorted(p for top in ("engine", "tui", "themes", "tests", "bench") for p in (ROOT / top).rglob("*.py"))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _library_private(package: str) -> set[str]:
    """The private names ``package`` defines, found in its source text: parsing all of Textual takes over a second.

    A def or class, or a name assigned or annotated (``self._modes: dict = ...``); a few reads count too, harmlessly."""
    spec = importlib.util.find_spec(package)
    assert spec and spec.origin
    source = "\n".join(p.read_text() for p in Path(spec.origin).parent.rglob("*.py"))
    pattern = r"\b(?:def|class)\s+(_(?!_)\w+)|(?:^\s*|\.)(_(?!_)\w+)\s*(?::|=(?!=)|,)"
    return {a or b for a, b in re.findall(pattern, source, re.M)}


def test_private_names_of_a_library_are_used_only_in_its_compatibility_module() -> None:
    """A Textual or llama-cpp-python release may rename any private name: one module to mend, whose docstring says
    why each is used (tests/tui/test_textual_compat.py checks them against the installed Textual).

    A use is an import of a private module of the library, or an attribute that the library defines and that is not
    one of this project's own private names on ``self``/``cls``."""
    own: set[str] = set()  # private names this project defines
    attributes: dict[str, list[tuple[str, ast.Attribute, bool]]] = {}  # file: (name, node, on self or cls)
    modules: dict[str, set[str]] = {}  # file: the private modules it imports
    for path in OWN_FILES:
        where = str(path.relative_to(ROOT))
        attributes[where], modules[where] = [], set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                own.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                own.add(node.id)
            elif isinstance(node, ast.Attribute) and _private(node.attr):
                if isinstance(node.ctx, ast.Store):
                    own.add(node.attr)
                on_self = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
                attributes[where].append((node.attr, node, on_self))
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names = [f"{node.module}.{a.name}" if isinstance(node, ast.ImportFrom) else a.name for a in node.names]
                modules[where] |= {name for name in names if any(map(_private, name.split(".")))}
    offenders, pending = {}, {}
    for library, home in COMPAT.items():
        library_names = _library_private(library)
        for where in attributes:
            uses = {name for name in modules[where] if name.split(".")[0] == library}
            uses |= {ast.unparse(node) for name, node, on_self in attributes[where]
                     if name in library_names and not (on_self and name in own)}  # fmt: skip
            allowed = NOT_YET_MOVED.get(where, set())
            pending.setdefault(where, set()).update(uses & allowed)
            if where != home and uses - allowed:
                offenders.setdefault(where, []).extend(sorted(uses - allowed))
    assert not offenders, offenders
    moved = {where: sorted(uses - pending[where]) for where, uses in NOT_YET_MOVED.items() if uses - pending[where]}
    assert not moved, f"moved already: delete them from NOT_YET_MOVED: {moved}"


def test_bench_scripts_use_only_public_engine_names() -> None:
    offenders = {}
    for path in sorted((ROOT / "bench").glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        bound = {
            alias.asname or alias.name.split(".")[0]
            for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
            if _own((node.module or "") if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0] == "engine"
        }  # fmt: skip
        uses = {m for m in _imports(path) if m.split(".")[0] == "engine" and any(map(_private, m.split(".")))}
        uses |= {
            ast.unparse(node) for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and _private(node.attr) and ast.unparse(node.value).split(".")[0] in bound
        }  # fmt: skip
        if uses:
            offenders[path.name] = sorted(uses)
    assert not offenders, offenders


def test_only_engine_tokenizers_loads_a_tokenizer() -> None:
    """One place loads tokenizers (revision, trust_remote_code and the chat template are decided there)."""
    offenders = []
    for path in [*ENGINE_FILES, *sorted((ROOT / "tui").rglob("*.py"))]:
        if path == ROOT / "engine" / "model" / "tokenizers.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Attribute) and node.attr == "from_pretrained":
                owner = ast.unparse(node.value)
                if "Tokenizer" in owner:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {owner}.from_pretrained")
    assert not offenders, offenders

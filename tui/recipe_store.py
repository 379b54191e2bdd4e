"""The workspace recipe as the Data/Template/Adapter/Method screens share it: a raw dict, validated per edit."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from tunedeck.engine.recipe import Recipe, RecipeError, recipe_from_dict


class RecipeStore:
    """Holds recipe.yaml as written (relative paths stay relative); every edit validates through tunedeck.engine.recipe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}
        self.error = ""
        self._saved: dict[str, Any] = {}  # the recipe as the file holds it
        self._saved_effective: Any = None  # and its effective values (validated once per load or save)
        self.load()

    def load(self, path: Path | None = None) -> str:
        """Read ``path`` (default: the current file); returns the problem, or ''."""
        self.path = path or self.path
        self._mark_saved({})
        try:
            data = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            self.data, self.error = {}, f"no recipe at {self.path}: `tunedeck demo --init DIR` writes one"
            return self.error
        except (OSError, yaml.YAMLError) as e:
            self.data, self.error = {}, f"{self.path}: cannot read it ({e})"
            return self.error
        self.data = data if isinstance(data, dict) else {}
        self._mark_saved(self.data)
        self.error = self.validate(self.data)
        return self.error

    @property
    def dirty(self) -> bool:
        """True when some field's value differs from the file: visiting a screen, or setting a field to the value
        it already has (written or defaulted), is not an edit."""
        if self.data == self._saved:
            return False
        return self._effective(self.data) != self._saved_effective

    def _mark_saved(self, data: dict[str, Any]) -> None:
        self._saved = copy.deepcopy(data)
        self._saved_effective = self._effective(self._saved)

    @staticmethod
    def _effective(data: dict[str, Any]) -> Any:
        try:
            return recipe_from_dict(copy.deepcopy(data)).to_dict()
        except RecipeError:
            return data

    @property
    def base(self) -> Path:
        """The folder relative data/model paths are resolved against."""
        return self.path.parent

    def get(self, dotted: str, default: Any = None) -> Any:
        """A field by its path (``adapter.r``), falling back to the Recipe default."""
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return self.default(dotted, default)
            node = node[part]
        return node

    def default(self, dotted: str, default: Any = None) -> Any:
        """The Recipe default of a field (``default`` when there is no such field)."""
        section, _, name = dotted.partition(".")
        try:
            recipe = recipe_from_dict({"model": {"name_or_path": "x"}, "data": {"train": "x"}})
            return getattr(getattr(recipe, section), name)
        except (AttributeError, RecipeError):
            return default

    @staticmethod
    def validate(data: dict[str, Any]) -> str:
        """'' when ``data`` is a valid recipe, else the field-named problem."""
        try:
            recipe_from_dict(copy.deepcopy(data))
        except RecipeError as e:
            return str(e)
        return ""

    def set(self, dotted: str, value: Any) -> str:
        """Set one field; returns the recipe's problem ('' when valid). Saving refuses an invalid recipe."""
        data = copy.deepcopy(self.data)
        parts = dotted.split(".")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
        problem = self.validate(data)
        self.data, self.error = data, problem
        return problem

    def recipe(self) -> Recipe:
        """The validated Recipe (raises RecipeError naming the field)."""
        return recipe_from_dict(copy.deepcopy(self.data), str(self.path))

    def resolve(self, value: str) -> str:
        """A path from the recipe made absolute against its folder when that file exists."""
        p = Path(value).expanduser()
        p = p if p.is_absolute() else self.base / p
        return str(p) if p.exists() else value

    def tokenizer_source(self) -> dict[str, Any]:
        """tunedeck.engine.model.loading.load_chat_tokenizer's model, revision and trust_remote_code, as the recipe says."""
        return {
            "model": self.resolve(str(self.get("model.name_or_path", ""))),
            "revision": self.get("model.revision") or None,
            "trust_remote_code": bool(self.get("model.trust_remote_code", False)),
        }

    def save(self, path: Path | None = None) -> Path:
        """Write the YAML `tunedeck train` runs (Recipe.save); raises RecipeError when invalid."""
        target = path or self.path
        self.recipe().save(target)
        self.path = target
        self._mark_saved(self.data)
        return target

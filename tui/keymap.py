"""The user's keymap: ``binding-id: keys`` lines in user_config_dir("tunedeck")/keymap.yaml.

Every Binding has an ``id``; ``?`` shows them. A line ``train: ctrl+t`` moves the action with id
``train`` to ctrl+t (``"ctrl+t,f5"`` or a list binds several keys). Textual applies it through
``App.set_keymap``. YAML rather than TOML: PyYAML is already a dependency and tomllib needs 3.11.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import platformdirs
import yaml


class LoadedKeymap(NamedTuple):
    """The keymap to apply and one warning per line that was skipped (or for a file that could not be read)."""

    keymap: dict[str, str]
    warnings: list[str]


def keymap_path() -> Path:
    """Where the user's keymap lives (honours XDG_CONFIG_HOME on Linux)."""
    return Path(platformdirs.user_config_dir("tunedeck")) / "keymap.yaml"


def load_keymap(known_ids: Iterable[str], path: Path | None = None) -> LoadedKeymap:
    """Read the keymap; a missing file is an empty keymap, a bad line is skipped with a warning naming it."""
    path = path or keymap_path()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return LoadedKeymap({}, [])
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        return LoadedKeymap({}, [f"{path}: not read ({e}); expected lines like 'train: ctrl+t'"])
    if data is None:
        return LoadedKeymap({}, [])
    if not isinstance(data, dict):
        return LoadedKeymap({}, [f"{path}: expected a mapping of binding id to keys, like 'train: ctrl+t'"])
    known = set(known_ids)
    keymap: dict[str, str] = {}
    warnings: list[str] = []
    for binding_id, keys in data.items():
        binding_id = str(binding_id)
        if binding_id not in known:
            warnings.append(f"{path}: {binding_id!r} is not a binding id (press ? to see them); line skipped")
            continue
        if isinstance(keys, list) and keys and all(isinstance(k, str) for k in keys):
            keys = ",".join(keys)
        if not isinstance(keys, str) or not keys.strip():
            warnings.append(f"{path}: {binding_id}: {keys!r} is not a key (write e.g. 'ctrl+t'); line skipped")
            continue
        keymap[binding_id] = ",".join(k.strip() for k in keys.split(","))
    return LoadedKeymap(keymap, warnings)

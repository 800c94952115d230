"""The objective registry: built-ins, entry points, ``package.module:factory``.

Built-ins are listed as strings, so listing them imports nothing heavy. Third-party objectives
are found in the entry-point group ``optmpp.objectives``. The contract is in
:mod:`optmpp.objectives.base`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from optmpp._tables import ConfigError

__all__ = [
    "BUILTIN_OBJECTIVES",
    "ENTRY_POINT_GROUP",
    "ObjectiveError",
    "ObjectiveInfo",
    "check_objective_name",
    "list_objectives",
    "make_objective",
    "resolve_objective",
]

ENTRY_POINT_GROUP = "optmpp.objectives"

#: name -> "module:factory"
BUILTIN_OBJECTIVES: dict[str, str] = {
    "hdpe-mi-dnn": "optmpp.objectives.hdpe_dnn:make",
    "tg-cnn": "optmpp.objectives.tg_cnn:make",
    "hdpe-mi-mlp": "optmpp.objectives.sklearn_mlp:make",
}

_TARGET_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class ObjectiveError(ConfigError):
    """An objective name that cannot be resolved: unknown, ambiguous or unloadable."""


@dataclass(frozen=True)
class ObjectiveInfo:
    name: str
    target: str
    source: str  # "built-in" or "entry point (distribution x.y)"


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def list_objectives() -> list[ObjectiveInfo]:
    """Built-in objectives, then those declared by installed packages."""
    out = [ObjectiveInfo(n, t, "built-in") for n, t in BUILTIN_OBJECTIVES.items()]
    for ep in _entry_points():
        dist = getattr(ep, "dist", None)
        where = f"entry point ({dist.name} {dist.version})" if dist is not None else "entry point"
        out.append(ObjectiveInfo(ep.name, ep.value, where))
    return out


def _candidates(name: str) -> list[ObjectiveInfo]:
    found = [o for o in list_objectives() if o.name == name]
    # the same distribution seen twice on sys.path is not ambiguous
    unique: dict[str, ObjectiveInfo] = {}
    for o in found:
        unique.setdefault(o.target, o)
    return list(unique.values())


def check_objective_name(name: str) -> str | None:
    """None when ``name`` can be resolved without importing it; else the problem."""
    if _TARGET_RE.match(name):
        return None
    found = _candidates(name)
    if len(found) == 1:
        return None
    if len(found) > 1:
        return (
            f"objective {name!r} is ambiguous: declared by "
            + "; ".join(f"{o.source} -> {o.target}" for o in found)
            + ". Use 'package.module:factory' to pick one."
        )
    known = ", ".join(o.name for o in list_objectives())
    return (
        f"unknown objective {name!r}; available: {known}; "
        "or give a factory as 'package.module:factory'"
    )


def _import_module(module_name: str, search: Sequence[Path]) -> ModuleType:
    """``importlib.import_module``; a top-level module that is not importable but lies in one of
    the ``search`` folders (``quad.py`` or a package ``quad/``) is imported from there, the folder
    appended to ``sys.path`` so that nothing installed is shadowed."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = module_name.partition(".")[0]
        if exc.name != top:  # the module was found; something it imports is missing
            raise
        for folder in search:
            if (folder / f"{top}.py").is_file() or (folder / top).is_dir():
                if str(folder) not in sys.path:
                    sys.path.append(str(folder))
                importlib.invalidate_caches()
                return importlib.import_module(module_name)
        raise


def _search_folders(where: str) -> list[Path]:
    """The study file's folder, then the current one: where a user keeps a module of their own."""
    folders = []
    if where and Path(where).is_file():
        folders.append(Path(where).resolve().parent)
    cwd = Path.cwd().resolve()
    if cwd not in folders:
        folders.append(cwd)
    return folders


def _load_target(name: str, target: str, search: Sequence[Path] = ()) -> Callable[[dict[str, Any]], Any]:
    module_name, _, attr = target.partition(":")
    try:
        module = _import_module(module_name, search)
    except ImportError as exc:
        looked = (
            " (it is neither installed nor on PYTHONPATH, and no "
            f"{module_name.partition('.')[0]}.py lies in " + " or ".join(str(f) for f in search) + ")"
            if search and isinstance(exc, ModuleNotFoundError) and exc.name == module_name.partition(".")[0]
            else ""
        )
        raise ObjectiveError(f"objective {name!r}: cannot import module {module_name!r}: {exc}{looked}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ObjectiveError(
                f"objective {name!r}: module {module_name!r} has no attribute {attr!r}"
            ) from None
    if not callable(obj):
        raise ObjectiveError(f"objective {name!r}: {target} is not callable")
    return obj


def resolve_objective(name: str, where: str = "") -> Callable[[dict[str, Any]], Any]:
    """The factory behind ``name`` (imports it). A ``module:factory`` whose module is not
    importable is looked for beside the study file ``where``, then in the current folder."""
    problem = check_objective_name(name)
    if problem:
        raise ObjectiveError(problem)
    if _TARGET_RE.match(name) and not _candidates(name):
        return _load_target(name, name, _search_folders(where))
    (info,) = _candidates(name)
    if info.source == "built-in":
        return _load_target(name, info.target)
    for ep in _entry_points():
        if ep.name == name and ep.value == info.target:
            try:
                factory = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plug-in must not crash us
                raise ObjectiveError(
                    f"objective {name!r}: entry point {info.target} ({info.source}) failed to load: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
            if not callable(factory):
                raise ObjectiveError(f"objective {name!r}: entry point {info.target} is not callable")
            return factory
    raise ObjectiveError(f"objective {name!r} vanished while loading")  # pragma: no cover


def make_objective(name: str, options: dict[str, Any] | None = None, where: str = "") -> Any:
    """Resolve ``name`` and call its factory with ``options``; check the result's contract."""
    factory = resolve_objective(name, where)
    prefix = f"{where}: " if where else ""
    try:
        objective = factory(dict(options or {}))
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc}") from None
    if not callable(objective):
        raise ObjectiveError(f"{prefix}objective {name!r}: the factory returned {objective!r}, not a trial function")
    direction = getattr(objective, "direction", "minimize")
    if direction not in ("minimize", "maximize"):
        raise ObjectiveError(f"{prefix}objective {name!r}: direction must be 'minimize' or 'maximize', got {direction!r}")
    return objective

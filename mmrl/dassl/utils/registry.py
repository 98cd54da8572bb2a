"""Name -> class registries (trainers, datasets, evaluators)."""
from __future__ import annotations

import difflib
from typing import Any, Dict, List, Optional, Sequence


def closest_name(requested: str, available: Sequence[str], cutoff: float = 0.0) -> Optional[str]:
    """The entry of ``available`` most similar to ``requested``; None if there is none, or none
    at least ``cutoff`` similar (difflib's ratio, 0..1)."""
    if not available:
        return None
    ratio = {name: difflib.SequenceMatcher(None, requested, name).ratio() for name in available}
    best = max(available, key=ratio.__getitem__)
    return best if ratio[best] >= cutoff else None


def did_you_mean(requested: str, available: Sequence[str], cutoff: float = 0.0) -> str:
    """' Did you mean "<closest>"?' for an error message, or "" when nothing is close enough."""
    hint = closest_name(requested, available, cutoff)
    return f' Did you mean "{hint}"?' if hint else ""


def check_availability(requested: str, available: Sequence[str]) -> None:
    """Raise ValueError naming the closest valid choice when ``requested`` is unknown."""
    if requested not in available:
        hint = closest_name(requested, available)
        raise ValueError(
            f"Invalid name: {requested!r}, do you mean {hint!r}? "
            f"Available: {sorted(available)}"
        )


class Registry:
    """Maps a name (by default the class ``__name__``) to an object.

    Registering the same name twice raises KeyError; asking for an unknown
    name raises ValueError suggesting the closest registered name.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._obj_map: Dict[str, Any] = {}

    def _do_register(self, name: str, obj: Any, force: bool = False) -> None:
        if name in self._obj_map and not force:
            raise KeyError(
                f'An object named "{name}" was already registered in the '
                f'"{self._name}" registry'
            )
        self._obj_map[name] = obj

    def register(self, obj: Any = None, force: bool = False, name: Optional[str] = None) -> Any:
        """Use as ``@REGISTRY.register()`` or call ``REGISTRY.register(cls)``; ``name`` replaces
        the class ``__name__`` as the key."""
        if obj is None:

            def wrapper(fn_or_class: Any) -> Any:
                self._do_register(name or fn_or_class.__name__, fn_or_class, force=force)
                return fn_or_class

            return wrapper
        self._do_register(name or obj.__name__, obj, force=force)
        return obj

    def get(self, name: str) -> Any:
        if name not in self._obj_map:
            hint = closest_name(name, list(self._obj_map))
            raise ValueError(
                f'Object name "{name}" does not exist in the "{self._name}" '
                f"registry, do you mean {hint!r}? "
                f"Registered: {self.registered_names()}"
            )
        return self._obj_map[name]

    def registered_names(self) -> List[str]:
        return list(self._obj_map.keys())

    def __contains__(self, name: str) -> bool:
        return name in self._obj_map

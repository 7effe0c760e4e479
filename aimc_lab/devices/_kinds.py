"""Kinds that a user registers under a name next to the built-in ones (noise models, drift
compensations): one implementation of the name check, the registration, and the checked build."""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Tuple

__all__ = ["KindRegistry", "check_kind_name"]

_KIND_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,63}")


def check_kind_name(kind, builtin: Tuple[str, ...], where: str) -> str:
    """A registrable kind name: a str of letters, digits, '_' or '-' (starting with a letter, at most 64
    characters) that is not one of ``builtin``."""
    if not isinstance(kind, str):
        raise TypeError(f"{where}: kind must be a str such as 'my_model', got {type(kind).__name__} {kind!r}")
    if not _KIND_PATTERN.fullmatch(kind):
        raise ValueError(f"{where}: kind = {kind!r} is invalid; allowed: a name of letters, digits, '_' or '-' "
                         "starting with a letter (at most 64 characters)")
    if kind in builtin:
        raise ValueError(f"{where}: kind = {kind!r} is a built-in kind; allowed: any other name (built-in: "
                         + ", ".join(map(repr, builtin)) + ")")
    return kind


class KindRegistry:
    """The user-registered kinds of one config field.

    ``allowed`` is the config's own list of valid kinds (e.g. ``config.NOISE_MODELS``): a registration
    appends to it, so the config's field check accepts the new name; ``product`` is the class every
    factory must return an instance of; ``verb`` names the public functions in messages
    (``register_<verb>``, ``unregister_<verb>``, ``make_<verb>``).
    """

    def __init__(self, allowed: List[str], builtin: Tuple[str, ...], product: type, verb: str) -> None:
        self.allowed, self.builtin, self.product, self.verb = allowed, tuple(builtin), product, verb
        self.factories: Dict[str, Callable[..., Any]] = {}

    def register(self, kind: str, factory: Callable[..., Any]) -> None:
        check_kind_name(kind, self.builtin, f"register_{self.verb}")
        if not callable(factory):
            raise TypeError(f"register_{self.verb}: factory must be callable (a {self.product.__name__} subclass "
                            f"or a function returning one), got {type(factory).__name__} {factory!r:.60}")
        self.factories[kind] = factory
        if kind not in self.allowed:
            self.allowed.append(kind)

    def unregister(self, kind: str) -> None:
        if kind not in self.factories:
            raise ValueError(f"unregister_{self.verb}: kind = {kind!r} is not registered; registered: "
                             + (", ".join(map(repr, self.factories)) or "none"))
        del self.factories[kind]
        self.allowed.remove(kind)

    def build(self, kind: str, *args: Any) -> Any:
        """``factory(*args)`` of a registered kind, checked to be a ``product``."""
        factory = self.factories.get(kind)
        if factory is None:
            raise ValueError(f"make_{self.verb}: kind = {kind!r} is not registered; allowed: "
                             + ", ".join(map(repr, self.allowed)) + f" (register_{self.verb} adds one)")
        made = factory(*args)
        if not isinstance(made, self.product):
            raise TypeError(f"make_{self.verb}: the factory registered for kind {kind!r} returned "
                            f"{type(made).__name__}; allowed: a {self.product.__name__} (subclass) instance")
        return made

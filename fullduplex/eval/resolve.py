"""``--system NAME`` -> a DuplexSystem: the built-in reference systems, else the systems registry."""

from __future__ import annotations

import importlib

from .reference_systems import BUILTIN

_REGISTRY_FUNCS = ("get_system", "load_system", "build_system", "make_system", "create_system")


def resolve_system(name: str):
    """A built-in reference system (silence, scripted, scripted-nonstop, echo) or whatever
    ``fullduplex.systems.registry`` resolves ``name`` to (default, cascade, ws://..., a folder)."""
    if name in BUILTIN:
        return BUILTIN[name]()
    try:
        reg = importlib.import_module("fullduplex.systems.registry")
    except ModuleNotFoundError as e:
        if e.name != "fullduplex.systems.registry":
            raise
        raise ValueError(f"unknown system {name!r}: built-ins are {', '.join(BUILTIN)} "
                         "(fullduplex.systems.registry is not available)") from e
    for f in _REGISTRY_FUNCS:
        if hasattr(reg, f):
            try:
                return getattr(reg, f)(name)
            except ValueError as e:
                if not name.startswith("cascade"):
                    raise ValueError(f"{e} (eval built-ins: {', '.join(BUILTIN)}; cascade[-silence|-smart|-text])") from e
                return _cascade(name)
    raise ValueError(f"fullduplex.systems.registry has none of {_REGISTRY_FUNCS}; cannot resolve {name!r}")


def resolve_batched(name: str, sessions: int):
    """A batched system of ``sessions`` sessions for a model system (default, random, random-tiny, a
    model folder), or None for the systems that run one conversation at a time (the built-ins, which
    cost nothing; the cascade, whose batched form is for live serving; a remote server)."""
    if sessions < 1:
        raise ValueError(f"--sessions must be at least 1, got {sessions}")
    if sessions == 1 or name in BUILTIN or name.startswith(("cascade", "ws://", "wss://", "echo")):
        return None
    from fullduplex.systems.registry import make_batched_system

    return make_batched_system(name, sessions)


def _cascade(name: str):
    """``cascade`` or ``cascade-<turn detector>`` (silence | smart | text), while the registry does
    not list the cascade itself."""
    from fullduplex.systems.cascade import CascadeConfig, CascadeSystem

    det = name.split("-", 1)[1] if "-" in name else None
    return CascadeSystem(CascadeConfig(turn_detector=det) if det else CascadeConfig())


def system_names() -> list[str]:
    return list(BUILTIN)

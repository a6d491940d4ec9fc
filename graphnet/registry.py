"""The op registry: every op comes from the entry-point group ``graphnet.ops``.

graphnet's own built-in ops are registered in graphnet's own ``pyproject.toml`` through the same
group, so a plugin op and a built-in op travel exactly the same path. The registry is lazy: listing
op names reads only package metadata; an op's module is imported the first time the op is needed.

Problems stay local: a plugin whose module fails to import is reported under its entry-point name
and distribution while every other op keeps working, and two distributions registering the same op
name make that name an error naming both (never a silent override).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from .errors import OpError, PluginLoadError, RegistryError, did_you_mean
from .op import Op

GROUP = "graphnet.ops"


@dataclass(frozen=True)
class OpSource:
    """Where an op comes from: the entry point and the distribution that declares it."""

    name: str
    value: str  # "package.module:Class"
    distribution: str

    def describe(self) -> str:
        return f"'{self.value}' from distribution '{self.distribution}'"


class Registry:
    """Op name -> op instance, loaded on first use."""

    def __init__(self, sources: dict[str, list[OpSource]]) -> None:
        self._sources = sources
        self._loaded: dict[str, Op] = {}

    @classmethod
    def from_entry_points(cls) -> "Registry":
        sources: dict[str, list[OpSource]] = {}
        for ep in entry_points(group=GROUP):
            source = OpSource(ep.name, ep.value, _distribution_name(ep))
            found = sources.setdefault(ep.name, [])
            # The same distribution can be visible twice (an editable install and a stale
            # egg-info); only *different* declarations clash.
            if all((s.value, s.distribution) != (source.value, source.distribution) for s in found):
                found.append(source)
        return cls(sources)

    def names(self) -> list[str]:
        """Every registered op name, sorted (clashing names included). Imports nothing."""
        return sorted(self._sources)

    def source(self, name: str) -> OpSource:
        self._check_known(name)
        return self._sources[name][0]

    def get(self, name: str) -> Op:
        """The op called ``name``, importing its module on first use."""
        if name in self._loaded:
            return self._loaded[name]
        self._check_known(name)
        found = self._sources[name]
        if len(found) > 1:
            listing = " and ".join(s.describe() for s in found)
            raise RegistryError(
                f"op '{name}' is registered twice: {listing}",
                hint="uninstall one of the distributions or rename the op in its entry points",
            )
        op = _load(found[0])
        self._loaded[name] = op
        return op

    def problems(self) -> dict[str, OpError]:
        """Every op that cannot be used, with the reason (imports every op)."""
        found: dict[str, OpError] = {}
        for name in self.names():
            try:
                self.get(name)
            except OpError as error:
                found[name] = error
        return found

    def _check_known(self, name: str) -> None:
        if name not in self._sources:
            raise OpError(f"unknown op '{name}'", hint=did_you_mean(name, self.names(), "known ops"))


def _distribution_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else "<unknown distribution>"


def _load(source: OpSource) -> Op:
    module_name, _, attr = source.value.partition(":")
    try:
        module = importlib.import_module(module_name)
        cls = module
        for part in attr.split("."):
            cls = getattr(cls, part)
    except Exception as error:  # a broken plugin must not take the others down
        raise PluginLoadError(
            f"op '{source.name}' ({source.describe()}) failed to import: "
            f"{type(error).__name__}: {error}",
            hint="fix or uninstall that plugin; every other op still works",
        ) from error
    if not (isinstance(cls, type) and issubclass(cls, Op)):
        raise PluginLoadError(
            f"op '{source.name}' ({source.describe()}) is not a subclass of graphnet.op.Op",
            hint="the entry point must name a class deriving from graphnet.op.Op",
        )
    _check_declaration(source, cls)
    op = cls()
    # The entry-point name is the op's name. It is set on the instance, not the class: one class
    # registered under two names (an alias) is two ops, each keeping its own name.
    op.name = source.name
    return op


def _check_declaration(source: OpSource, cls: type[Op]) -> None:
    roles = set(cls.inputs)
    param_names = {p.name for p in cls.params}
    problems = []
    if not cls.inputs:
        problems.append("declares no input roles")
    if roles & param_names:
        problems.append(f"uses names both as input role and parameter: {sorted(roles & param_names)}")
    if not set(cls.no_grad) <= roles:
        problems.append(f"no_grad names unknown roles {sorted(set(cls.no_grad) - roles)}")
    if not set(cls.variadic) <= roles:
        problems.append(f"variadic names unknown roles {sorted(set(cls.variadic) - roles)}")
    if not isinstance(cls.version, int) or cls.version < 1:
        problems.append(f"has version {cls.version!r}; it must be an integer >= 1")
    if problems:
        raise PluginLoadError(
            f"op '{source.name}' ({source.describe()}) " + "; ".join(problems),
            hint="fix the op's class attributes",
        )


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry built from installed entry points."""
    global _default
    if _default is None:
        _default = Registry.from_entry_points()
    return _default


def reset_default_registry() -> None:
    """Forget the cached registry (after installing a plugin at run time, and in tests)."""
    global _default
    _default = None

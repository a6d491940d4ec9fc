"""The op registry: op name -> op, from the entry-point group ``graphnet.ops`` and from in-process
registration (``graphnet.register_op``).

graphnet's own built-in ops are registered in graphnet's own ``pyproject.toml`` through the same
group, so a plugin op and a built-in op travel exactly the same path. The registry is lazy: listing
op names reads only package metadata; an op's module is imported the first time the op is needed,
and its declaration is checked then (roles, parameters, versions, and the signatures of its
methods against them).

Problems stay local: a plugin whose module fails to import, or whose declaration is wrong, is
reported under its op name and distribution while every other op keeps working. Two distributions
registering the same op name make that name an error naming both and saying how to choose (never a
silent override). Two environment variables help with a broken environment:

- ``GRAPHNET_DISABLE_PLUGINS=1`` loads graphnet's built-in ops only (ops registered in process
  still count: they are the running program's own);
- ``GRAPHNET_OP_PROVIDER=relu=graphnet,swish=graphnet-swish`` picks the distribution that provides
  an op two distributions register.

Versions: an op class may list the classes of its earlier versions in ``previous``; ``get(name)``
gives the current one, ``get(name, version=1)`` an earlier one (a model file saved with it).
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable, Mapping

from pydantic import BaseModel

from .errors import OpError, PluginLoadError, RegistryError, did_you_mean
from .op import Op, Param

GROUP = "graphnet.ops"
BUILTIN = "graphnet"  # the distribution of the built-in ops
IN_PROCESS = "<in-process>"  # the "distribution" of an op registered by register_op
DISABLE_VARIABLE = "GRAPHNET_DISABLE_PLUGINS"
PROVIDER_VARIABLE = "GRAPHNET_OP_PROVIDER"
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,127}")


@dataclass(frozen=True)
class OpSource:
    """Where an op comes from: the entry point and the distribution that declares it, or the class
    itself for an op registered in process."""

    name: str
    value: str  # "package.module:Class"
    distribution: str
    cls: type | None = field(default=None, compare=False, repr=False)  # registered in process

    @property
    def in_process(self) -> bool:
        return self.cls is not None

    def describe(self) -> str:
        if self.in_process:
            return f"'{self.value}' registered in process"
        return f"'{self.value}' from distribution '{self.distribution}'"


class Registry:
    """Op name -> op instance (one per version), loaded on first use.

    ``sources`` maps each name to every source declaring it (more than one is a clash);
    ``providers`` maps an op name to the distribution chosen where several declare it."""

    def __init__(self, sources: Mapping[str, list[OpSource]], providers: Mapping[str, str] | None = None) -> None:
        self._sources = {name: list(found) for name, found in sources.items()}
        self._providers = dict(providers or {})
        self._loaded: dict[str, dict[int, Op]] = {}  # name -> version -> op
        self.disabled: list[OpSource] = []  # plugin ops left out (GRAPHNET_DISABLE_PLUGINS)

    @classmethod
    def from_entry_points(cls, *, plugins: bool | None = None) -> "Registry":
        """The installed ops. ``plugins=False`` keeps graphnet's built-ins only; by default that
        is what ``GRAPHNET_DISABLE_PLUGINS=1`` asks for. ``GRAPHNET_OP_PROVIDER`` is read here."""
        if plugins is None:
            plugins = not plugins_disabled()
        sources: dict[str, list[OpSource]] = {}
        disabled = []
        for ep in entry_points(group=GROUP):
            source = OpSource(ep.name, ep.value, _distribution_name(ep))
            if not plugins and source.distribution != BUILTIN:
                disabled.append(source)
                continue
            found = sources.setdefault(ep.name, [])
            # The same distribution can be visible twice (an editable install and a stale
            # egg-info); only *different* declarations clash.
            if all((s.value, s.distribution) != (source.value, source.distribution) for s in found):
                found.append(source)
        registry = cls(sources, providers_from_environment())
        registry.disabled = sorted(disabled, key=lambda s: s.name)
        return registry

    def copy(self) -> "Registry":
        """A registry with the same ops (loaded ones shared); what is registered on the copy
        stays on it (tests, and programs that want their own set of ops)."""
        twin = Registry(self._sources, self._providers)
        twin._loaded = {name: dict(versions) for name, versions in self._loaded.items()}
        twin.disabled = list(self.disabled)
        return twin

    # -- looking ops up --------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every registered op name, sorted (clashing names included). Imports nothing."""
        return sorted(self._sources)

    def source(self, name: str) -> OpSource:
        """Where op ``name`` comes from (the chosen provider where several declare it)."""
        self._check_known(name)
        try:
            return self._chosen(name)
        except RegistryError:
            return self._sources[name][0]

    def get(self, name: str, version: int | None = None) -> Op:
        """The op called ``name``, importing its module on first use: its current version, or
        ``version`` (one the op lists in ``previous``)."""
        ops = self._versions(name)
        if version is None:
            return ops[max(ops)]
        if version not in ops:
            provided = ", ".join(str(v) for v in sorted(ops))
            raise OpError(
                f"op '{name}' has no version {version}: {self._chosen(name).describe()} provides "
                f"version{'s' if len(ops) > 1 else ''} {provided}",
                hint=f"install the release of the plugin that provides op '{name}' version {version}",
            )
        return ops[version]

    def versions(self, name: str) -> list[int]:
        """The versions of op ``name`` that can be loaded, oldest first."""
        return sorted(self._versions(name))

    def problems(self) -> dict[str, OpError]:
        """Every op that cannot be used, with the reason (imports every op)."""
        found: dict[str, OpError] = {}
        for name in self.names():
            try:
                self._versions(name)
            except OpError as error:
                found[name] = error
        return found

    # -- registering in process ------------------------------------------------------------------

    def register(self, cls: type, name: str | None = None) -> type:
        """Register op class ``cls`` as ``name`` (default: its ``name`` attribute, else its class
        name in snake_case: ``LeakyRelu`` -> ``leaky_relu``). The declaration is checked now;
        a name another source already registers is an error naming it (registering the same class
        again, as a notebook cell run twice does, replaces it). Returns ``cls``."""
        name = _op_name(cls, name)
        value = f"{getattr(cls, '__module__', '?')}:{getattr(cls, '__qualname__', repr(cls))}"
        source = OpSource(name, value, IN_PROCESS, cls)
        _versions_of(source, cls)  # raises PluginLoadError with what is wrong
        others = [s for s in self._sources.get(name, []) if s.value != value]
        if others:
            raise RegistryError(
                f"op '{name}' is already registered: {others[0].describe()}",
                hint=f"register {getattr(cls, '__name__', 'it')} under another name: "
                     f"register_op({getattr(cls, '__name__', 'cls')}, name='my_{name}')",
            )
        self._add(source)
        return cls

    def registered_in_process(self) -> list[OpSource]:
        return [s for found in self._sources.values() for s in found if s.in_process]

    def _add(self, source: OpSource) -> None:
        found = [s for s in self._sources.get(source.name, []) if s.value != source.value]
        self._sources[source.name] = found + [source]
        self._loaded.pop(source.name, None)

    # -- internals -------------------------------------------------------------------------------

    def _versions(self, name: str) -> dict[int, Op]:
        if name in self._loaded:
            return self._loaded[name]
        self._check_known(name)
        source = self._chosen(name)
        cls = source.cls if source.in_process else _import(source)
        ops = {}
        for version, version_cls in _versions_of(source, cls).items():
            op = version_cls()
            # The entry-point name is the op's name. It is set on the instance, not the class:
            # one class registered under two names (an alias) is two ops, each keeping its name.
            op.name = name
            ops[version] = op
        self._loaded[name] = ops
        return ops

    def _chosen(self, name: str) -> OpSource:
        """The one source of op ``name``: the only one, or the one GRAPHNET_OP_PROVIDER picks."""
        found = self._sources[name]
        wanted = self._providers.get(name)
        if wanted is not None:
            picked = [s for s in found if _normal(s.distribution) == _normal(wanted)]
            if len(picked) == 1:
                return picked[0]
            offered = " and ".join(f"'{s.distribution}'" for s in found)
            raise RegistryError(
                f"{PROVIDER_VARIABLE} picks '{wanted}' for op '{name}', but op '{name}' comes from {offered}",
                hint=f"set {PROVIDER_VARIABLE}={name}={found[0].distribution}, or leave {name} out of it",
            )
        if len(found) == 1:
            return found[0]
        raise RegistryError(_clash_message(name, found), hint=_clash_hint(name, found))

    def _check_known(self, name: str) -> None:
        if name in self._sources:
            return
        for source in self.disabled:
            if source.name == name:
                raise OpError(
                    f"op '{name}' comes from the plugin '{source.distribution}', and plugins are "
                    f"disabled ({DISABLE_VARIABLE}=1)",
                    hint=f"unset {DISABLE_VARIABLE} to use it",
                )
        raise OpError(f"unknown op '{name}'", hint=did_you_mean(name, self.names(), "known ops"))


# ----------------------------------------------------------------------------------------------
# The environment
# ----------------------------------------------------------------------------------------------


_builtins_only = False  # set by disable_plugins() (the CLI's --no-plugins)


def plugins_disabled() -> bool:
    """Whether graphnet's built-in ops only are wanted: ``GRAPHNET_DISABLE_PLUGINS`` (not empty,
    not 0), or ``disable_plugins()`` called in this process."""
    return _builtins_only or os.environ.get(DISABLE_VARIABLE, "").strip() not in ("", "0")


def disable_plugins() -> None:
    """Load graphnet's built-in ops only from now on in this process, as
    ``GRAPHNET_DISABLE_PLUGINS=1`` does (the CLI's ``--no-plugins``)."""
    global _builtins_only
    _builtins_only = True
    reset_default_registry()


def providers_from_environment() -> dict[str, str]:
    """``GRAPHNET_OP_PROVIDER=relu=graphnet,swish=graphnet-swish`` as {op: distribution}."""
    text = os.environ.get(PROVIDER_VARIABLE, "")
    providers = {}
    for entry in text.split(","):
        if not entry.strip():
            continue
        op, sep, distribution = (part.strip() for part in entry.partition("="))
        if not sep or not op or not distribution:
            raise RegistryError(
                f"{PROVIDER_VARIABLE}={text!r}: {entry.strip()!r} is not OP=DISTRIBUTION",
                hint=f"for example {PROVIDER_VARIABLE}=relu=graphnet,swish=graphnet-swish",
            )
        providers[op] = distribution
    return providers


def _clash_message(name: str, found: list[OpSource]) -> str:
    times = "twice" if len(found) == 2 else f"{len(found)} times"
    return f"op '{name}' is registered {times}: " + " and ".join(s.describe() for s in found)


def _clash_hint(name: str, found: list[OpSource]) -> str:
    """How to choose: keep graphnet's own op if it is one of them, else the first."""
    distributions = sorted(s.distribution for s in found if not s.in_process)
    keep = BUILTIN if BUILTIN in distributions else (distributions[0] if distributions else found[0].distribution)
    others = sorted({d for d in distributions if d != keep})
    uninstall = f"pip uninstall {' '.join(others)}" if others else "uninstall all but one"
    return f"choose one with {PROVIDER_VARIABLE}={name}={keep}, or {uninstall}"


def _normal(distribution: str) -> str:
    """A distribution name as pip compares them (PEP 503): case and runs of -_. do not matter."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _distribution_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else "<unknown distribution>"


def _op_name(cls: Any, name: str | None) -> str:
    if name is None:
        name = getattr(cls, "name", "") if isinstance(cls, type) else ""
        if not name:
            raw = getattr(cls, "__name__", "")
            name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", raw).lower()
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise OpError(
            f"op name {name!r} is not a name: letters, digits, _, - and . (at most 128), "
            "starting with a letter or _",
            hint="pass one: register_op(cls, name='my_op')",
        )
    return name


# ----------------------------------------------------------------------------------------------
# Loading one op and checking its declaration
# ----------------------------------------------------------------------------------------------


def _import(source: OpSource) -> Any:
    module_name, _, attr = source.value.partition(":")
    try:
        module = importlib.import_module(module_name)
        target: Any = module
        for part in attr.split("."):
            target = getattr(target, part)
    except Exception as error:  # a broken plugin must not take the others down
        raise PluginLoadError(
            f"op '{source.name}' ({source.describe()}) failed to import: "
            f"{type(error).__name__}: {error}",
            hint="fix or uninstall that plugin; every other op still works",
        ) from error
    return target


def _versions_of(source: OpSource, cls: Any) -> dict[int, type[Op]]:
    """Version -> class of every version ``cls`` provides (itself and its ``previous``), each
    declaration checked; PluginLoadError naming the op, its source and what is wrong."""
    where = f"op '{source.name}' ({source.describe()})"
    if not (isinstance(cls, type) and issubclass(cls, Op)):
        raise PluginLoadError(
            f"{where} is not a subclass of graphnet.op.Op",
            hint="the entry point must name a class deriving from graphnet.op.Op",
        )
    classes: dict[int, type[Op]] = {}
    problems: list[str] = []
    waiting: list[type] = [cls]
    while waiting:
        item = waiting.pop()
        if not (isinstance(item, type) and issubclass(item, Op)):
            problems.append(f"lists {item!r} in previous, which is not a subclass of graphnet.op.Op")
            continue
        if item.version in classes:
            if classes[item.version] is not item:
                problems.append(f"has two classes for version {item.version}: "
                                f"{classes[item.version].__qualname__} and {item.__qualname__}")
            continue
        version_problems = _declaration_problems(item)
        if item is not cls and isinstance(item.version, int) and isinstance(cls.version, int) \
                and item.version >= cls.version:
            version_problems.append(f"is listed in previous but is not older than version {cls.version}")
        if version_problems:
            label = "" if item is cls else f"version {item.version!r} ({item.__qualname__}) "
            problems.append(label + "; ".join(version_problems))
        if isinstance(item.version, int):
            classes[item.version] = item
        previous = item.previous if isinstance(item.previous, (tuple, list)) else [item.previous]
        waiting.extend(previous)
    if problems:
        raise PluginLoadError(f"{where}: " + "; ".join(problems), hint="fix the op's declaration")
    return classes


def _declaration_problems(cls: type[Op]) -> list[str]:
    """What is wrong with one op class's declaration (empty when nothing)."""
    roles = set(cls.inputs)
    params = list(cls.params) if isinstance(cls.params, (tuple, list)) else []
    param_names = {p.name for p in params if isinstance(p, Param)}
    problems = []
    if not cls.inputs:
        problems.append("declares no input roles")
    if roles & param_names:
        problems.append(f"uses names both as input role and parameter: {sorted(roles & param_names)}")
    if not set(cls.no_grad) <= roles:
        problems.append(f"no_grad names unknown roles {sorted(set(cls.no_grad) - roles)}")
    if not set(cls.variadic) <= roles:
        problems.append(f"variadic names unknown roles {sorted(set(cls.variadic) - roles)}")
    if not isinstance(cls.version, int) or isinstance(cls.version, bool) or cls.version < 1:
        problems.append(f"has version {cls.version!r}; it must be an integer >= 1")
    if not (isinstance(cls.Attrs, type) and issubclass(cls.Attrs, BaseModel)):
        problems.append(f"has Attrs {cls.Attrs!r}, which is not a subclass of graphnet.op.OpAttrs")
    if len(params) != len(param_names) or not isinstance(cls.params, (tuple, list)):
        problems.append("params must be a tuple of graphnet.op.Param with distinct names")
    if getattr(cls, "example", None) is not None:
        problems.append("declares `example`, which graphnet no longer reads: define examples(self, rng) "
                        "returning [Example(attrs={...}, inputs={role: array})] (graphnet.op.Example)")
    if cls.forward is Op.forward:
        problems.append("defines no forward(self, attrs, ctx, ...)")
    if not problems:
        problems.extend(_signature_problems(cls, params))
    return problems


def _signature_problems(cls: type[Op], params: list[Param]) -> list[str]:
    """The methods' signatures against the declaration: shape takes the roles, forward the roles
    and parameters (with a default for a parameter that can be turned off), backward, examples and
    onnx what graphnet passes them."""
    roles = list(cls.inputs)
    names = [p.name for p in params]
    optional = {p.name for p in params if p.enabled is not None}
    declared = f"(input roles: {', '.join(roles)}; parameters: {', '.join(names) or 'none'})"
    role_names = {role: "input role" for role in roles}
    checks: list[tuple[str, tuple[str, ...], dict[str, str], set[str]]] = [
        ("shape", ("attrs",), role_names, set()),
        ("forward", ("attrs", "ctx"), {**role_names, **{n: "parameter" for n in names}}, optional),
        ("backward", ("attrs", "saved", "dy", "wants"), {}, set()),
        ("examples", ("rng",), {}, set()),
    ]
    if cls.onnx is not Op.onnx:
        checks.append(("onnx", ("attrs", "b", "inputs", "params"), {}, set()))
    problems = []
    for method, leading, keywords, may_be_off in checks:
        found = _call_problems(getattr(cls, method), leading, keywords, may_be_off)
        if found:
            problems.append(f"{method}{_shown(getattr(cls, method))} " + " and ".join(found) + f" {declared}")
    return problems


def _call_problems(
    function: Callable, leading: tuple[str, ...], keywords: dict[str, str], may_be_off: set[str]
) -> list[str]:
    """Why ``function`` (a method, self first) cannot be called as graphnet calls it: ``leading``
    positionally, then ``keywords`` (name -> what it is) by name, those in ``may_be_off`` only
    sometimes."""
    try:
        parameters = list(inspect.signature(function).parameters.values())[1:]  # self
    except (TypeError, ValueError):
        return []  # a builtin or an odd callable: nothing to compare
    kinds = inspect.Parameter
    if any(p.kind is kinds.VAR_POSITIONAL for p in parameters):
        positional_ok, rest = True, [p for p in parameters if p.kind is kinds.KEYWORD_ONLY]
    else:
        positional = [p for p in parameters if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)]
        positional_ok = len(positional) >= len(leading)
        rest = positional[len(leading):] + [p for p in parameters if p.kind is kinds.KEYWORD_ONLY]
    if not positional_ok:
        return [f"does not take ({', '.join(leading)}) first"]
    takes_any = any(p.kind is kinds.VAR_KEYWORD for p in parameters)
    accepted = {p.name: p for p in rest}
    problems = []
    for name, what in keywords.items():
        if not takes_any and (name not in accepted or accepted[name].kind is kinds.POSITIONAL_ONLY):
            problems.append(f"does not take {what} '{name}'")
    for p in rest:
        if p.default is kinds.empty and p.name not in keywords:
            problems.append(f"requires '{p.name}', which graphnet never passes")
        elif p.name in may_be_off and p.default is kinds.empty:
            problems.append(f"needs a default for parameter '{p.name}', which can be turned off "
                            f"(write {p.name}=None)")
    return problems


def _shown(function: Callable) -> str:
    try:
        return str(inspect.signature(function))
    except (TypeError, ValueError):
        return "(...)"


# ----------------------------------------------------------------------------------------------
# The process-wide registry
# ----------------------------------------------------------------------------------------------

_default: Registry | None = None
_carried: list[OpSource] = []  # in-process registrations kept across reset_default_registry()


def default_registry() -> Registry:
    """The process-wide registry: the installed ops and those registered in process."""
    global _default, _carried
    if _default is None:
        registry = Registry.from_entry_points()
        for source in _carried:
            registry._add(source)
        _carried = []
        _default = registry
    return _default


def reset_default_registry() -> None:
    """Forget the installed ops read so far (after installing a plugin at run time, and in
    tests); ops registered in process are kept."""
    global _default, _carried
    if _default is not None:
        _carried = _default.registered_in_process()
    _default = None


def register_op(cls: type | None = None, name: str | None = None, *, registry: Registry | None = None) -> Any:
    """Register an op class in process (scripts, notebooks, tests), with the same checks and
    clash rules as an entry point. Use it as a call, ``register_op(Gelu)``, or as a decorator,
    ``@register_op`` or ``@register_op(name="gelu")``. The name defaults to the class's ``name``
    attribute, else its class name in snake_case. ``registry`` defaults to the process-wide one.
    Returns the class."""
    if cls is None:
        return lambda decorated: register_op(decorated, name, registry=registry)
    return (registry or default_registry()).register(cls, name)

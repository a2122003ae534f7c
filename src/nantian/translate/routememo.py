"""What a :class:`~nantian.translate.Translator` remembers of each route between translations, and when the
remembered result may be used again.

A route's result depends on the route object, on the Gateway/ListenerSet states its parentRefs resolve to, on
the backend resolutions its compilation asked for, on the objects its ExtensionRef filters name and (for
listeners that select namespaces by label) on its Namespace. Every one of those is checked by identity: the
translator keeps an unchanged Gateway state, resolution or IR value as the same object, and Kubernetes objects
are immutable values, so "the same objects" means "the same inputs". Counters make the common case cheap: while
neither the Gateway states (the translator's gateway epoch) nor any resolution (the resolver's epoch) changed,
an entry that reads nothing else (``plain``) and whose route object is the same needs no further check.
"""

from __future__ import annotations

from collections.abc import Iterable

from nantian.resources import GRPCRoute, HTTPRoute, KubeObject, ObjectRef, ResourceSet
from nantian.translate.backends import BackendResolver, Resolution, ResolveKey
from nantian.translate.compiled import CompiledHttp, CompiledStream
from nantian.translate.filters import extension_refs
from nantian.translate.routes import (
    ParentTarget,
    Route,
    RouteContext,
    RouteResult,
    compile_route,
    route_parents,
    translate_route,
)
from nantian.translate.state import ListenerState

__all__ = ["CompileEntry", "RouteEntry", "RouteMemo"]


class CompileEntry:
    """A compiled route (for one backend client certificate) and what compiling it read."""

    __slots__ = ("cert", "compiled", "epoch", "keys", "reads", "resolutions")

    def __init__(
        self,
        cert: str | None,
        compiled: CompiledHttp | CompiledStream,
        keys: tuple[ResolveKey, ...],
        resolutions: tuple[Resolution | None, ...],
        reads: tuple[tuple[ObjectRef, KubeObject | None], ...],
        epoch: int,
    ) -> None:
        self.cert = cert
        """The backend client certificate the route was compiled for."""
        self.compiled = compiled
        self.keys = keys
        """Every resolution asked for, in order, once each."""
        self.resolutions = resolutions
        """The resolution object each key had."""
        self.reads = reads
        """(ref, object or ``None``) of every ExtensionRef target."""
        self.epoch = epoch
        """The resolver's epoch when the resolutions were last seen to be current."""

    def valid(self, resolver: BackendResolver, resources: ResourceSet) -> bool:
        """Every resolution is still the same object and every ExtensionRef target the same object."""
        if self.epoch != resolver.epoch:
            current = resolver.current
            for key, res in zip(self.keys, self.resolutions, strict=True):
                if current(key) is not res:
                    return False
            self.epoch = resolver.epoch
        return all(resources.get(ref) is obj for ref, obj in self.reads)


_UNREAD = object()


class RouteEntry:
    """One route's result and the inputs it was computed from."""

    __slots__ = (
        "_parents",
        "checked",
        "compiles",
        "gateway_epoch",
        "namespace",
        "plain",
        "result",
        "route",
    )

    def __init__(
        self,
        route: Route,
        parents: tuple[ParentTarget, ...],
        result: RouteResult | None,
        compiles: tuple[CompileEntry, ...],
        namespace: object,
        gateway_epoch: int,
    ) -> None:
        self.route = route
        self.result = result
        self.compiles = compiles
        self.namespace = namespace
        """The Namespace object attachment read, or ``_UNREAD``."""
        self.gateway_epoch = gateway_epoch
        self.plain = namespace is _UNREAD and not any(c.reads for c in compiles)
        """Nothing but parents and resolutions to check."""
        self.checked = -1
        """The translator's epoch at which this plain entry was last known valid (-1: check every time)."""
        self._parents = parents

    def parents(self) -> tuple[ParentTarget, ...]:
        """What the route's parentRefs resolved to."""
        return self._parents

    def resolve_keys(self) -> Iterable[ResolveKey]:
        """Every resolution key its compilations hold (with repeats across compilations)."""
        for c in self.compiles:
            yield from c.keys

    def gateways(self) -> set[tuple[str, str]]:
        """(namespace, name) of the Gateways the route's IR goes to."""
        return {p.gateway for p in self.result.placements} if self.result is not None else set()


class RouteMemo:
    """Route entries of the last translation keyed by route object identity, with counts of the resolutions
    they hold (a resolution nobody holds is released from the resolver)."""

    def __init__(self) -> None:
        self.entries: dict[int, RouteEntry] = {}
        """By ``id(route)`` (an entry holds its route, so the id is not reused while the entry lives)."""
        self.by_gateway: dict[tuple[str, str], dict[int, RouteEntry]] = {}
        """The entries whose IR goes to each Gateway."""
        self._by_ref: dict[ObjectRef, int] = {}
        self.attached: dict[ListenerState, int] = {}
        """How many routes attach to each listener (listener states hash by identity)."""
        self._holders: dict[ResolveKey, int] = {}
        self._unheld: set[ResolveKey] = set()
        self._old_compiles: dict[str | None, CompileEntry] = {}
        self._new_compiles: dict[str | None, CompileEntry] = {}
        self._resolver: BackendResolver | None = None
        self._resources: ResourceSet | None = None

    # --- checking ------------------------------------------------------------------------------
    def still_valid(
        self,
        entry: RouteEntry,
        ctx: RouteContext,
        resolver: BackendResolver,
        gateway_epoch: int,
        namespaces_changed: bool,
    ) -> bool:
        """Whether ``entry`` (for the same route object) holds for ``ctx``; refreshes its gateway epoch if so."""
        route = entry.route
        # Gateway and listener states compare by identity (eq=False).
        if entry.gateway_epoch != gateway_epoch and route_parents(route, ctx) != entry.parents():
            return False
        resources = ctx.resources
        for c in entry.compiles:
            if not c.valid(resolver, resources):
                return False
        if (
            entry.namespace is not _UNREAD
            and namespaces_changed
            and resources.namespace(route.metadata.namespace) is not entry.namespace
        ):
            return False
        entry.gateway_epoch = gateway_epoch
        return True

    # --- computing -----------------------------------------------------------------------------
    def compute(
        self, route: Route, old: RouteEntry | None, ctx: RouteContext, resolver: BackendResolver, gateway_epoch: int
    ) -> RouteEntry:
        """A new entry for ``route``, reusing the compilations of ``old`` (the same route object) still valid."""
        self._old_compiles = {c.cert: c for c in old.compiles} if old is not None and old.route is route else {}
        self._new_compiles = {}
        self._resolver, self._resources = resolver, ctx.resources
        parents = route_parents(route, ctx)
        try:
            result = translate_route(route, ctx, parents)
            compiles = tuple(self._new_compiles.values())
        finally:
            self._old_compiles, self._new_compiles = {}, {}
            self._resolver = self._resources = None
        namespace: object = _UNREAD
        if result is not None and result.reads_namespace:
            namespace = ctx.resources.namespace(route.metadata.namespace)
        return RouteEntry(route, parents, result, compiles, namespace, gateway_epoch)

    def compile(self, route: Route, client_cert: str | None) -> CompiledHttp | CompiledStream:
        """:data:`~nantian.translate.routes.Compile` for the route being computed."""
        resolver, resources = self._resolver, self._resources
        assert resolver is not None and resources is not None
        entry = self._old_compiles.get(client_cert)
        if entry is None or not entry.valid(resolver, resources):
            recorded: list[ResolveKey] = []
            resolver.recording = recorded
            try:
                compiled = compile_route(route, resolver, resources, client_cert)
            finally:
                resolver.recording = None
            keys = tuple(dict.fromkeys(recorded)) if len(recorded) > 1 else tuple(recorded)
            reads: tuple[tuple[ObjectRef, KubeObject | None], ...] = ()
            if isinstance(route, HTTPRoute) or isinstance(route, GRPCRoute):  # noqa: SIM101 (faster than a union)
                refs = extension_refs(route)
                if refs:
                    reads = tuple([(ref, resources.get(ref)) for ref in refs])
            current = resolver.current
            resolutions = tuple([current(k) for k in keys])
            entry = CompileEntry(client_cert, compiled, keys, resolutions, reads, resolver.epoch)
        self._new_compiles[client_cert] = entry
        return entry.compiled

    # --- bookkeeping ---------------------------------------------------------------------------
    def store(self, fresh: RouteEntry, old: RouteEntry | None, ref: ObjectRef) -> set[tuple[str, str]]:
        """Keep ``fresh`` in place of ``old`` (the same route object) or of the entry of an earlier object with
        the same ``ref``; returns the Gateways whose IR may change."""
        key = id(fresh.route)
        if old is None:
            earlier = self._by_ref.get(ref)
            if earlier is not None and earlier != key:
                old = self.entries.pop(earlier, None)
        self._by_ref[ref] = key
        self.entries[key] = fresh
        self.hold(fresh)
        touched = fresh.gateways()
        for gateway in touched:
            self.by_gateway.setdefault(gateway, {})[key] = fresh
        if old is not None:
            self.let_go(old)
            gone = old.gateways()
            old_key = id(old.route)
            for gateway in gone - touched if old_key == key else gone:
                self._unplace(gateway, old_key, old)
            touched = touched | gone
        return touched

    def drop(self, key: int) -> tuple[RouteEntry, set[tuple[str, str]]]:
        """Forget the entry of a route that is gone; returns it and the Gateways its IR went to."""
        entry = self.entries.pop(key)
        ref = entry.route.ref
        if self._by_ref.get(ref) == key:
            del self._by_ref[ref]
        self.let_go(entry)
        gone = entry.gateways()
        for gateway in gone:
            self._unplace(gateway, key, entry)
        return entry, gone

    def _unplace(self, gateway: tuple[str, str], key: int, entry: RouteEntry) -> None:
        found = self.by_gateway.get(gateway)
        if found is not None and found.get(key) is entry:
            del found[key]
            if not found:
                del self.by_gateway[gateway]

    def hold(self, entry: RouteEntry) -> None:
        """Count the resolutions ``entry`` holds and the listeners it attaches to."""
        if entry.result is not None:
            attached = self.attached
            for lst in entry.result.attached:
                attached[lst] = attached.get(lst, 0) + 1
        holders = self._holders
        for c in entry.compiles:
            for key in c.keys:
                holders[key] = holders.get(key, 0) + 1

    def let_go(self, entry: RouteEntry) -> None:
        """Stop counting the resolutions ``entry`` holds and the listeners it attaches to."""
        if entry.result is not None:
            attached = self.attached
            for lst in entry.result.attached:
                left = attached.get(lst, 0) - 1
                if left > 0:
                    attached[lst] = left
                else:
                    attached.pop(lst, None)
        holders = self._holders
        for key in entry.resolve_keys():
            left = holders.get(key, 0) - 1
            if left > 0:
                holders[key] = left
            else:
                holders.pop(key, None)
                self._unheld.add(key)

    def release_unheld(self, resolver: BackendResolver) -> None:
        """Release from ``resolver`` the resolutions no entry holds."""
        if self._unheld:
            resolver.release(k for k in self._unheld if k not in self._holders)
            self._unheld = set()

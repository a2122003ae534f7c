"""Route attachment: which listeners a route's parentRef selects and whether they admit the route.

The checks run in the Gateway API order, and the first that leaves no listener gives the reason:
``sectionName``/``port`` (``NoMatchingParent``), allowedRoutes kinds and namespaces
(``NotAllowedByListeners``), hostname intersection (``NoMatchingListenerHostname``).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from nantian.resources import Namespace, ParentReference, ResourceSet
from nantian.translate.hostnames import intersect_all
from nantian.translate.state import ListenerState

__all__ = ["Attachment", "attach", "namespace_allowed"]


def namespace_allowed(listener: ListenerState, route_ns: str, resources: ResourceSet) -> bool:
    """``allowedRoutes.namespaces`` of ``listener`` admits routes from ``route_ns``."""
    rn = listener.spec.allowed_routes.namespaces
    if rn.from_ == "All":
        return True
    if rn.from_ == "Same":
        return route_ns == listener.owner.namespace
    if rn.from_ == "Selector":
        if rn.selector is None:
            return False
        ns = resources.namespace(route_ns)
        labels = ns.metadata.labels if isinstance(ns, Namespace) else {"kubernetes.io/metadata.name": route_ns}
        if "kubernetes.io/metadata.name" not in labels:
            labels = {**labels, "kubernetes.io/metadata.name": route_ns}
        return rn.selector.matches(labels)
    return False


@attrs.frozen
class Attachment:
    """Result of one parentRef: the listeners (with the hostnames served on each) or why none."""

    listeners: tuple[tuple[ListenerState, tuple[str, ...]], ...]
    reason: str
    message: str

    @property
    def accepted(self) -> bool:
        """At least one listener admits the route."""
        return bool(self.listeners)


def attach(
    candidates: Sequence[ListenerState],
    parent: ParentReference,
    route_kind: str,
    route_ns: str,
    hostnames: Sequence[str] | None,
    resources: ResourceSet,
) -> Attachment:
    """Attach a route (``hostnames`` ``None``: a kind without hostnames) to ``candidates`` via ``parent``."""
    selected = [
        lst
        for lst in candidates
        if (parent.section_name is None or lst.name == parent.section_name)
        and (parent.port is None or lst.port == parent.port)
    ]
    if not selected:
        what = []
        if parent.section_name is not None:
            what.append(f"sectionName {parent.section_name}")
        if parent.port is not None:
            what.append(f"port {parent.port}")
        return Attachment((), "NoMatchingParent", f"no listener matches {' and '.join(what) or 'the parentRef'}")
    allowed = [lst for lst in selected if route_kind in lst.kinds and namespace_allowed(lst, route_ns, resources)]
    if not allowed:
        return Attachment(
            (), "NotAllowedByListeners", f"no selected listener admits a {route_kind} from namespace {route_ns}"
        )
    if hostnames is None:
        return Attachment(tuple((lst, ()) for lst in allowed), "Accepted", "Route is accepted")
    out: list[tuple[ListenerState, tuple[str, ...]]] = []
    for lst in allowed:
        served = intersect_all(lst.hostname, hostnames)
        if served:
            out.append((lst, tuple(served)))
    if not out:
        return Attachment(
            (), "NoMatchingListenerHostname", "no route hostname intersects the hostname of a selected listener"
        )
    return Attachment(tuple(out), "Accepted", "Route is accepted")

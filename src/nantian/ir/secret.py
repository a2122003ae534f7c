"""Key material the data plane needs: server certificates and keys, CA bundles."""

from __future__ import annotations

import attrs

__all__ = ["Secret"]


@attrs.frozen(kw_only=True)
class Secret:
    """``name`` is ``namespace/name`` of the Secret or ConfigMap it came from. PEM text."""

    name: str
    certificate_chain: str | None = None
    private_key: str | None = attrs.field(default=None, repr=False)
    ca_bundle: str | None = None

"""The reference data-plane app (``nantian proxy``): a transport client feeding a proxy runtime, plus the admin API."""

from nantian.dataplane.app import DataPlane, ProxyOptions, run_proxy

__all__ = ["DataPlane", "ProxyOptions", "run_proxy"]

"""The same snapshots as Envoy v3 resources over ADS, so a real Envoy can serve as a nantian data plane.

Needs the ``xds-protos`` package (``pip install nantian[envoy]``).
"""

from nantian.xds.envoy.bootstrap import bootstrap
from nantian.xds.envoy.resources import UNSUPPORTED, clusters, listeners, resources
from nantian.xds.envoy.server import EnvoyAdsServer

__all__ = ["UNSUPPORTED", "EnvoyAdsServer", "bootstrap", "clusters", "listeners", "resources"]

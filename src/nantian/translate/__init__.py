"""The translator: Gateway API resources -> IR snapshot + Kubernetes statuses.

``translate(resources, TranslateOptions(...))`` is pure and deterministic: no I/O, no clock, and the order in
which objects were delivered never shows in the output. Bad input becomes status conditions, never an
exception. Every Gateway API semantic nantian implements lives in this package:

- :mod:`.gatewayclass`: class acceptance by ``controllerName``; :mod:`.features`: supported features.
- :mod:`.gateways`, :mod:`.listeners`, :mod:`.addresses`, :mod:`.tls`: Gateways, ListenerSets, listener
  validation and conflicts, addresses, certificate checks.
- :mod:`.attachment`, :mod:`.hostnames`, :mod:`.referencegrant`: route attachment.
- :mod:`.backends`, :mod:`.policies`: Service/EndpointSlice resolution and BackendTLSPolicy.
- :mod:`.httproute`, :mod:`.grpcroute`, :mod:`.filters`, :mod:`.streamroutes`, :mod:`.precedence`: routes to IR.
- :mod:`.routes`, :mod:`.irbuild`, :mod:`.translator`: putting it together; :mod:`.routememo`: what a
  :class:`Translator` remembers of each route between translations (incremental translation).
"""

from nantian.translate.features import FEATURES
from nantian.translate.translator import TranslateOptions, Translation, Translator, translate

__all__ = ["FEATURES", "TranslateOptions", "Translation", "Translator", "translate"]

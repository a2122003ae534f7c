"""Built-in resource sources and the protocols every source and status sink follows.

- :class:`FileSource` (``files:DIR``): manifests in a directory, watched.
- :class:`nantian.sources.kubernetes.KubernetesSource` (``kubernetes``, ``kubernetes:CONTEXT``): list and
  watch an API server; :class:`nantian.sources.kubernetes.KubernetesStatusSink` writes status subresources.
  Imported from its module, so that ``import nantian.sources`` stays light.
"""

from nantian.sources.base import ResourceSource, StatusSink
from nantian.sources.files import FileSource

__all__ = ["FileSource", "ResourceSource", "StatusSink"]

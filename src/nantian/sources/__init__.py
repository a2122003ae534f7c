"""Built-in resource sources (``files``) and the protocols every source and status sink follows."""

from nantian.sources.base import ResourceSource, StatusSink
from nantian.sources.files import FileSource

__all__ = ["FileSource", "ResourceSource", "StatusSink"]

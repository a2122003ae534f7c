"""nantian: a library-first Kubernetes Gateway API implementation."""

__version__ = "0.1.0"

__all__ = ["__version__"]

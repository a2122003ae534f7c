"""The admin HTTP API and dashboard shared by every nantian app."""

from nantian.admin.server import AdminServer, handle_request
from nantian.admin.state import AdminState

__all__ = ["AdminServer", "AdminState", "handle_request"]

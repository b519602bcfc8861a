"""flexilib: a web server that loads its request handlers at run time and swaps them live."""

from flexilib.request import Headers, Request
from flexilib.response import Response

__all__ = ["Headers", "Request", "Response"]
__version__ = "0.1.0"

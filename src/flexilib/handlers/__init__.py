"""Handler kinds, one module each, looked up by the kind name config.py assigns.

Modules are imported only when a config uses their kind, so a server that
serves native libraries never pays for the FaaS or proxy code.
"""

from __future__ import annotations

import importlib

from flexilib.handlers.base import Handler, HandlerSpec

__all__ = ["create_handler", "handler_class"]

_KINDS = {
    "native": ("flexilib.handlers.native", "NativeHandler"),
    "python": ("flexilib.handlers.python", "PythonHandler"),
    "lambda": ("flexilib.handlers.lambda_inproc", "LambdaHandler"),
    "lambda-runtime": ("flexilib.handlers.lambda_runtime", "LambdaRuntimeHandler"),
    "worker": ("flexilib.handlers.worker", "WorkerHandler"),
    "proxy": ("flexilib.handlers.proxy", "ProxyHandler"),
}


def handler_class(kind: str) -> type[Handler]:
    """The Handler subclass for a kind; ValueError when the kind is not available."""
    try:
        module_name, class_name = _KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown target kind {kind!r}") from None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise ValueError(f"target kind {kind!r} is not available in this build") from None
        raise
    return getattr(module, class_name)


def create_handler(spec: HandlerSpec) -> Handler:
    return handler_class(spec.kind)(spec)

"""Handler kinds, one package (or module) each, independent of one another.

Each implements `flexilib.runtime.handler.Handler` and is found by the kind
name `config.py` assigns (`flexilib.runtime.handler.KINDS`); a kind is only
imported when a config uses it.
"""

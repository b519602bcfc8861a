"""What every handler kind runs on: the Handler interface and registry, the slot
(load on first use, drain and swap), the dispatcher (inline or thread pool),
the file watcher and the Python module loader. Knows nothing of HTTP framing.
"""

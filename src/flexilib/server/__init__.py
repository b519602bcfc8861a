"""A worker process: the event loop, the routing table, and the application
that connects the HTTP protocol to handlers (route, dispatch, answer, log).
"""

"""HTTP/1.1 only: the connection protocol, the request/response exchange, flow control,
the response-head rules and status lines. Imports nothing of the handler side.
"""

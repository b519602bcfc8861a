"""AWS Lambda simulation: the pieces that do not depend on the HTTP server.

- `events`: the API Gateway event (payload format 2.0 or 1.0) for a request;
- `responses`: the HTTP response for a function's return value, and the
  error responses API Gateway gives;
- `context`: the handler's `context` object;
- `environment`: the variables Lambda defines, and a per-function `os.environ`.
"""

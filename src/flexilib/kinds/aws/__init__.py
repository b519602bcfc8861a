"""AWS Lambda functions: in process (`lambda:`) and custom runtimes (`lambda-runtime:`).

- `function`: the `lambda:` kind; `runtime`: the `lambda-runtime:` kind;
- `events`: the API Gateway event (payload format 2.0 or 1.0) for a request;
- `responses`: the HTTP response for a function's return value, and the
  error responses API Gateway gives;
- `context`: the handler's `context` object;
- `environment`: the variables Lambda defines, and a per-function `os.environ`;
- `runtime_api`, `runtime_pool`: the Lambda Runtime API and the processes behind it.
"""

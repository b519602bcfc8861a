"""The one response every server in the suite answers to wrk's plain `GET /`.

wrk sends a single request header (`Host`), so flexilib's bundled sample
library (examples/c/sample.c) answers status 200, body `" 1"` (a space and
the request's header count) and the extra header `X-custom-foo: bar`. The
peers serve these same bytes so that every server writes the same response;
`run.py` compares them with what flexilib actually answers and warns when
they drift. Change them here and nowhere else.
"""

STATUS = 200
BODY = b" 1"
CONTENT_TYPE = "text/plain"
EXTRA_HEADERS: tuple[tuple[str, str], ...] = (("X-custom-foo", "bar"),)

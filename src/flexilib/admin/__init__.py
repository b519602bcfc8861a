"""The admin port, served by the master: health, readiness, Prometheus metrics, status.

`aggregate.py` adds up what the workers report; `listener.py` serves
`app.py` (the endpoints), `metrics.py` (/metrics) and `page.py` (/) from
the master's loop. See README "Operating flexilib".
"""

"""The run's traffic: a scenario's ``traffic`` and ``requests`` in, one record per request out
(``requests.parquet``).

Locust in library mode: ``engine`` runs it in the harness process, ``distributed`` on
Locust's master/worker engine (``worker``: a load-generator process); ``users`` builds the
user classes (closed model, or open-model arrivals from a dispatcher), ``calls`` the
per-request path, ``design`` the designed endpoint mix, ``schedule`` the load level over time,
``tracing`` the W3C traceparent for a locustfile's users; ``recorder`` writes every request
exactly, from Locust's ``request`` event.
"""

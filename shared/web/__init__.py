"""The HTTP side every service shares: a service's FastAPI app (``app``), the edge that
maps errors and limits requests (``edge``), and the routes every service has: health,
readiness, contract, dead letters (``http``)."""

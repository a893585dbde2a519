"""Reports over HTTP (JSON): the request model, one handler call per route."""

"""Open311 GeoReport v2 for residents' apps: services, service requests, api keys."""

"""Alembic's environment for every service: it runs that service's own ``migrations/env.py``."""

from minqing.shared.persistence.migrations import run_service_env

run_service_env()

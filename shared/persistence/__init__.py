"""PostgreSQL: engines and sessions (``db``), the unit of work that is every service's one
write path (``uow``), the plumbing tables in each service's schema (``tables``), bulk
writes on asyncpg (``bulk``), state rows (``state``), races settled by a unique constraint
(``races``), migrations per service (``migrations``, ``migration_ops``,
``alembic_template/``) and pruning (``housekeeping``)."""

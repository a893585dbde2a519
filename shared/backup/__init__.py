"""Backing up and restoring Minqing: the streams by JetStream's own snapshots, PostgreSQL by
pg_dump, and a restore that makes the two agree again (``docs/operator/backup-restore.md``).

``snapshot.py`` speaks JetStream's snapshot and restore protocol; ``postgres.py`` runs
pg_dump and pg_restore; ``tail.py`` reads and republishes stream messages; ``plan.py``
decides, purely, what a restore republishes and how each outbox row is marked;
``manifest.py`` describes a backup; ``backup.py`` and ``restore.py`` run the steps in
order; ``cli.py`` is the ``minqing backup`` and ``minqing restore`` commands.
"""

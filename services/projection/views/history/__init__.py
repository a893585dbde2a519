"""The audit trail: every canonical event, known type or not, once by id.

Rows are keyed by event id and placed by (stream epoch, stream sequence): a re-created
stream restarts its sequences at 1 in a new epoch, so nothing collides or is dropped.
Each row is numbered in the log (``log_seq``) and sealed by hash, chained to the log's
previous entry and to its matter's previous entry (``seal.py``); one
batch at a time extends the chain (a transaction-scoped advisory lock).

A row holds nothing the seal does not cover: the sealed fields of the event and the hashes
that chain it. Whatever a reader or a rebuild takes from this table (a rebuild makes the
events the stream no longer has from these columns, ``replay.py``) is what ``minqing audit
verify`` checks; the message as it was received stays in the stream.

The whole read model is here: ``tables.py`` (``events``), ``write.py`` (``apply_batch``:
store and seal), ``seal.py`` (the hash chain, pure), ``queries.py`` (a matter's trail,
and its unit and village as the trail tells) and ``verify.py`` (the head as a checkpoint,
and a full verification). No other read model reads or writes its table (the list keeps
its own record, ``issue_events``).

Migrations (``services/projection/migrations/versions``): ``events`` since 0001, placed
by stream epoch since 0002, sealed into the chain since 0005 (``log_seq`` and the hashes),
the statistics' index since 0008, and only sealed columns since 0009. A change to the
table is a new revision beside the change here; ``tests/system/integration/test_migrations.py``
holds the two equal.
"""

from minqing.services.projection.views.history.queries import trail, whereabouts
from minqing.services.projection.views.history.tables import (
    FEEDBACK,
    FIGURE_TYPES,
    FUNDING,
    LOOKBACK_FAILED,
    LOOKBACK_PASSED,
    TABLES,
    events,
)
from minqing.services.projection.views.history.write import CHAIN_LOCK, apply_batch

NAME = "history"
# Sealed in stream order: its consumer reads in order from its committed position (no
# redelivery can put a later event before an earlier one), as a rebuild reads the stream.
ORDERED = True

__all__ = [
    "CHAIN_LOCK",
    "FEEDBACK",
    "FIGURE_TYPES",
    "FUNDING",
    "LOOKBACK_FAILED",
    "LOOKBACK_PASSED",
    "NAME",
    "ORDERED",
    "TABLES",
    "apply_batch",
    "events",
    "trail",
    "whereabouts",
]

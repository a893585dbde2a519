"""The list of matters (台账): each matter's current state, folded incrementally.

The whole read model is here: ``fold.py`` (pure: ``IssueView`` and ``evolve``, a matter's
events folded in stream order), ``tables.py`` (the matters now, their earlier states, and
the events folded into them), ``write.py`` (``apply_batch``: a batch folded into the
matters it touches), ``queries.py`` (filters, sorts, pages; one matter now or as of a
time; each only as far as the caller reaches) and ``output.py`` (``IssueOut``, the HTTP
shape, derived from the view).

It reads no other read model's tables: a late event's re-fold and a matter "as of" a time
fold the events it recorded itself (``issue_events``, written in the same transaction as
the list's rows). So it runs alone (``MINQING_PROJECTION_VIEWS=issues``) and rebuilds
alone (``minqing projection rebuild issues``), with or without the audit trail.

Migrations (``services/projection/migrations/versions``): ``issues`` since 0001, its
columns grown by 0002 (stream epochs), 0003 (intake channels), 0004 (working calendar),
0006 (free text: ``search_text``, ``search_grams``) and 0007 (scale); ``issue_versions``
since 0008 (filled by folding the audit trail); ``issue_events`` since 0010 (filled from
the audit trail). A change to these tables is a new revision beside the change here;
``tests/system/integration/test_migrations.py`` holds the two equal.
"""

from minqing.services.projection.views.issues.queries import (
    BadCursor,
    IssueFilter,
    Reached,
    Sort,
    decode_cursor,
    encode_cursor,
    filtered,
    get_issue,
    issue_as_of,
    list_issues,
    source,
)
from minqing.services.projection.views.issues.tables import (
    TABLES,
    issue_events,
    issue_versions,
    issues,
)
from minqing.services.projection.views.issues.write import apply_batch

ORDERED = False  # a late event re-folds its matter: any delivery order will do
NAME = "issues"

__all__ = [
    "NAME",
    "ORDERED",
    "TABLES",
    "BadCursor",
    "IssueFilter",
    "Reached",
    "Sort",
    "apply_batch",
    "decode_cursor",
    "encode_cursor",
    "filtered",
    "get_issue",
    "issue_as_of",
    "issue_events",
    "issue_versions",
    "issues",
    "list_issues",
    "source",
]

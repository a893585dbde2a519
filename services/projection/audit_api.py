"""The audit trail's trust routes: the head as a checkpoint, and verification."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from minqing.services.projection.views.history.seal import Checkpoint
from minqing.services.projection.views.history.verify import checkpoint, verify
from minqing.shared.web.deps import ClockDep, SessionsDep

Hash = Annotated[str, Query(pattern=r"^[0-9a-f]{64}$", description="a hex SHA-256")]


class CheckpointOut(BaseModel):
    """The log's head: keep it outside the database (print it, post it, mail it)."""

    log_seq: int
    hash: str
    count: int
    time: datetime

    @classmethod
    def of(cls, cp: Checkpoint) -> CheckpointOut:
        return cls(log_seq=cp.log_seq, hash=cp.hash, count=cp.count, time=cp.time)


class ProblemOut(BaseModel):
    kind: str  # changed | deleted | inserted | checkpoint
    log_seq: int
    event_id: str | None
    issue_id: str | None
    detail: str


class CheckpointRef(BaseModel):
    """The checkpoint a verification was asked to hold the log to."""

    log_seq: int
    hash: str


class VerificationOut(BaseModel):
    ok: bool
    entries: int
    head_log_seq: int
    head_hash: str | None
    problem: ProblemOut | None
    checkpoint: CheckpointRef | None


router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("/checkpoint")
async def get_checkpoint(sessions: SessionsDep, clock: ClockDep) -> CheckpointOut:
    """The current head of the audit log (position, hash, count, time)."""
    return CheckpointOut.of(await checkpoint(sessions, clock()))


@router.get("/verify")
async def get_verify(
    sessions: SessionsDep,
    log_seq: Annotated[int | None, Query(ge=1)] = None,
    hash: Hash | None = None,
) -> VerificationOut:
    """Recompute the hash chain (the whole log, then each matter's) and name the first
    entry that was changed, deleted or inserted. With ``log_seq`` and ``hash`` from an
    earlier checkpoint, a rewrite of the chain up to there is caught too."""
    against = None
    if log_seq is not None and hash is not None:
        against = Checkpoint(log_seq=log_seq, hash=hash, count=0, time=datetime.min)
    found = await verify(sessions, against)
    problem = found.problem
    return VerificationOut(
        ok=found.ok,
        entries=found.entries,
        head_log_seq=found.head_log_seq,
        head_hash=found.head_hash,
        problem=None if problem is None else ProblemOut(**problem.__dict__),
        checkpoint=None if against is None else CheckpointRef(log_seq=log_seq, hash=hash),
    )

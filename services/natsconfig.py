"""``minqing nats-config``: the NATS server's account and users, computed from what the
services declare (``services/catalog.py``), the event contract (``Event.EMITTED_BY``) and
the reference data's sources; the permissions themselves are ``shared/messaging/access.py``.

- Each service may publish the event types it emits, declare the streams it uses, and
  create, read and acknowledge only its own consumers (its declaration's durables, its
  ingress consumer, the projection's ordered readers).
- A service with an ingress consumer (``shared/ingress/channel.py``) also declares the
  ingress, outcomes and dead-letter streams, publishes outcomes and dead letters, and
  re-submits dead letters on the subjects its consumer reads (intake's reads the whole
  ingress stream: it answers every subject no one else reads).
- Each source of the reference data is a department system that may send on
  ``<ingress prefix>.<source>.>`` and read its own outcomes.
- The operator's tools (``minqing projection rebuild``) use the ``admin`` user.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from minqing.shared.messaging.access import (
    ACCESS_FILE,
    Durable,
    ServiceNeeds,
    User,
    users,
    write_access,
)
from minqing.shared.service.settings import Settings


def service_needs(settings: Settings) -> list[ServiceNeeds]:
    """What each service does on NATS, from its declaration and the event contract."""
    # Imported here: every service's declaration, only when the users are computed.
    from minqing.services import catalog
    from minqing.services.intake.channels.nats.consumer import CONSUMER as INTAKE_INGRESS
    from minqing.services.projection.views import VIEWS
    from minqing.shared.contract.asyncapi import EMITTED_BY
    from minqing.shared.ingress.channel import dlq_subject, kind_subjects, outcome_subject
    from minqing.shared.ingress.kinds import read_by

    # The projection's read models that read in stream order (ephemeral readers of their own).
    ordered = {f"projection-{view.NAME}" for view in VIEWS if view.ORDERED}
    found = []
    for declaration in catalog.declarations(settings):
        name = declaration.service
        emits = tuple(cls.TYPE for cls, emitter in EMITTED_BY.items() if emitter == name)
        durables = [
            Durable(settings.stream_name, consumer, ordered=consumer in ordered)
            for consumer in declaration.consumers
        ]
        streams = [settings.stream_name]
        publishes: list[str] = []
        ingress = sorted(
            {
                channel.receiver
                for channel in declaration.channels
                if channel.receiver and channel.stream == settings.ingress_stream_name
            }
        )
        for consumer in ingress:
            durables.append(Durable(settings.ingress_stream_name, consumer))
            prefix = settings.ingress_subject_prefix
            resubmits = (
                (f"{prefix}.>",)
                if consumer == INTAKE_INGRESS
                else kind_subjects(prefix, read_by(name))
            )
            publishes += [outcome_subject(settings, "*"), dlq_subject(settings, "*"), *resubmits]
        if ingress:
            streams += [
                settings.ingress_stream_name,
                settings.outcomes_stream_name,
                settings.dlq_stream_name,
            ]
        found.append(
            ServiceNeeds(
                service=name,
                emits=emits,
                streams=tuple(streams),
                durables=tuple(durables),
                publishes=tuple(dict.fromkeys(publishes)),
            )
        )
    return found


def department_sources(settings: Settings) -> list[str]:
    """Every source of the reference data: each may send over NATS (the ingress
    consumers accept every source code)."""
    from minqing.shared.contract.reference import load

    return load(settings.reference_dir).codes("sources")


def nats_users(settings: Settings) -> list[User]:
    """Every NATS user of this deployment: the operator's, each service's, each
    department system's."""
    return users(settings, department_sources(settings), service_needs(settings))


def register(app: typer.Typer) -> None:
    """Add ``nats-config`` to the ``minqing`` command, and give ``minqing up`` the users to
    configure its embedded NATS server with (``shared/cli`` cannot know the services)."""
    from minqing.shared.cli import main

    app.command(name="nats-config")(nats_config)
    main.nats_users = nats_users


def nats_config(
    out: Annotated[
        Path,
        typer.Argument(
            file_okay=False, help="Directory to write access.conf and the credentials into."
        ),
    ],
) -> None:
    """Write the NATS server's account and users (access.conf: include it from nats.conf)
    and one NKey seed file per user (credentials/: each service's, admin's, and
    departments/<source>.nk for each department system). Keys already in OUT are kept;
    delete a seed file to give that user a new key. Reads the MINQING_* settings (subject
    prefixes, stream names, the reference data)."""
    settings = Settings()
    written = write_access(out, nats_users(settings))
    typer.echo(f"Wrote {out / ACCESS_FILE}: include it from the NATS server's configuration.")
    for name, path in written.items():
        typer.echo(f"{name:>28}: {path}")

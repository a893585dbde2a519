"""Department systems on NATS, whatever they send: reading CloudEvents, the reasons a
message is refused, its outcome, the dead-letter sink, re-submission and metrics. Intake's
report consumer and followup's progress/resolution consumer are built on it."""

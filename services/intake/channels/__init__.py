"""Intake's channels: each turns its input into the report command and calls the one use case
(``minqing.services.intake.handlers``); none holds a rule or a transaction of its own."""

"""Pure building blocks every service's domain uses, with no I/O: the working-day
calendar (``calendar``), the injectable clock (``clock``), identifiers (``ids``) and
values safe to store (``text``)."""

"""The ``minqing`` command (``main``): serve a service, migrate, bring the whole system up,
and the commands of compiled lists (``imports``) and rebuilds (``rebuild``)."""

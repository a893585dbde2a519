"""The benchmark: Minqing's figures beside the raw limits of its stack, measured in one run.

Run it with ``make bench`` (``python -m bench --help``). It is a development tool: it is not
installed with the product, and no test imports it. It talks to the system only through
stable interfaces: the ``minqing`` CLI and its ``MINQING_*`` settings, the HTTP API, the
JetStream stream and subjects, the event classes and envelope, and row counts in the
services' schemas.
"""

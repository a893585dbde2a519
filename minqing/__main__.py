"""``python -m minqing``: the ``minqing`` command."""

from minqing.services.cli import main

main()

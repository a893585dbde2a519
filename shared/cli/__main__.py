"""``python -m minqing.shared.cli``: the ``minqing`` command."""

from minqing.shared.cli.main import main

main()

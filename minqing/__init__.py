"""Minqing (民情): closed-loop handling of residents' matters.

The installed distribution is this one package. In the repository it is a shim: ``services``
and ``shared`` are links to the folders of the same names at the top, so the code is
imported as ``minqing.services`` and ``minqing.shared`` from the checkout and from an
installed wheel alike.
"""

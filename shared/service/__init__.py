"""One service process: its settings, read in one place (``settings``), its runtime of
database, NATS, relay, subscriptions and lifespan (``runtime``), and small process helpers
(``infra``)."""

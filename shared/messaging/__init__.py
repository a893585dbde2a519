"""NATS JetStream and the reliability around it: streams and publishing (``streams``), the
transactional outbox and its relay (``outbox``), consumption with an inbox (``consumer``,
``subscription``), routing tables to batch functions (``dispatch``), dead letters
(``dead_letters``), and whose fault a failure is (``faults``)."""

"""The contract the services agree on: one frozen class per event (``events``), the
CloudEvents envelope they travel in (``envelope``), the codes of the reference data
(``reference``, with ``reference_data/``), and who emits and consumes what, as an AsyncAPI
document (``asyncapi``). A change here is a change of the contract."""

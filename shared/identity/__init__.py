"""Who may do what: principals (people and systems) with roles scoped to a unit, how they
prove it (passwords, tokens, sessions, OpenID Connect), and the matrix of which role may
call which endpoint, kept as data (``matrix.toml``) that every service enforces.

Every service verifies the credentials of each request itself against the ``identity``
schema (tokens and sessions are stored as SHA-256 hashes, passwords as Argon2id hashes),
and takes the actor of every event it records from the principal, never from the body.
"""

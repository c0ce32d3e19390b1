"""The site server's library: one store for many doors, its accounts, people and events.

`store` (SQLite or PostgreSQL behind one interface), `sealing` (templates and crops encrypted at rest
with the server key), `accounts` (argon2id passwords, sessions, roles, API tokens), `trail` (the admin
trail, a keyed hash chain `facegate audit verify` checks), `people` (enrolment from photos, erasure),
`events` (door events, deduplicated by door and sequence), `verification` (1:1 and 1:N against the
site's people, probes batched into one matrix product) and `web` (the FastAPI application: pages and
the /v1 API). `facegate site init|serve` (facegate.apps.site) is the thin command over them.
"""

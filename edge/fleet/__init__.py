"""The fleet: doors and their site talking over MQTT (mosquitto) with bulk data over the site's HTTPS.

`topics` (names and the broker's ACL), `broker` (mosquitto's generated configuration, password file and
process), `snapshots` (signed, versioned gallery snapshots per door group), `outbox` (a door's audit
entries not yet confirmed by the site), `agent` (the door's sync agent: events out, gallery in,
heartbeats) and `ingest` (the site's side: deduplicated events, chain continuity, confirmations,
announcements). Shared by the door (facegate.edge.door) and the site server (facegate.edge.site).
"""

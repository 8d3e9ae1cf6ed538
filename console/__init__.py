"""The operators' web console: server-rendered pages over Postgres and the broker link."""

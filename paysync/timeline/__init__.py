"""A payment's timeline: ``document`` shapes the rows into the JSON document (pure),
``store`` reads them from Postgres in one snapshot (``queries.sql``)."""

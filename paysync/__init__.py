"""paysync shared kernel: settings, logging, database, AMQP topology, errors and the CLI."""

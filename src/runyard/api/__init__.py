"""HTTP API: ``create_app`` plus one thin router per surface over the services."""

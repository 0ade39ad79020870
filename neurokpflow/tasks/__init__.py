"""neurokpflow.tasks (under construction)."""

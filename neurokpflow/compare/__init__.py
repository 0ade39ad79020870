"""neurokpflow.compare (under construction)."""

"""neurokpflow.data (under construction)."""

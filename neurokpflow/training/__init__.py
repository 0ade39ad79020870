"""neurokpflow.training (under construction)."""

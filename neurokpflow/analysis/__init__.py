"""neurokpflow.analysis (under construction)."""

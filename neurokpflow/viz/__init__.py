"""neurokpflow.viz (under construction)."""

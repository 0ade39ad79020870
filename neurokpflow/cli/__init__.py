"""The ``neurokpflow`` command line."""

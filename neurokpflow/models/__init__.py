"""Recurrent cells and sequence models."""
from .cells import RecurrentCell, LeakyRNNCell, GRUCell, LSTMCell, StateLinearization, unroll

__all__ = ["RecurrentCell", "LeakyRNNCell", "GRUCell", "LSTMCell", "StateLinearization", "unroll"]

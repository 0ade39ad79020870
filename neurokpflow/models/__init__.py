"""Recurrent cells and sequence models."""
from .cells import CellOptions, RecurrentCell, LeakyRNNCell, GRUCell, LSTMCell, StateLinearization, unroll
from .sequence import CELLS, KINDS, RecurrentModel, from_config, make
from .recording import evaluation_batch, model_activity, record

__all__ = ["RecurrentCell", "LeakyRNNCell", "CellOptions", "GRUCell", "LSTMCell", "StateLinearization", "unroll",
           "RecurrentModel", "make", "from_config", "KINDS", "CELLS", "record", "evaluation_batch", "model_activity"]

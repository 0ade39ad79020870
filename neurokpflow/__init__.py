"""neurokpflow: how gradient descent shapes the dynamics of multi-task RNNs, and how those
dynamics compare with brain recordings.

Subpackages
-----------
data      NWB -> xarray loaders, preprocessing, synthetic recordings, dataset registry
tasks     seeded cognitive-task generators (Memory/Delay/React Pro/Anti, flip-flop, mixes)
models    recurrent cells and sequence models (leaky RNN, GRU, LSTM)
training  trainer with checkpoints, exact resume and xarray training logs
kpflow    matrix-free KPFlow operators (J_theta, K, P, P^-1, P K P*) and spectral estimators
analysis  dynamic collapse over training and multi-task (sub-task) alignment
compare   model-vs-recording similarity measures with statistics
viz       plots
cli       the ``neurokpflow`` command line
"""
__version__ = "0.1.0"


def __getattr__(name):
    # ``neurokpflow.record`` lives with the models; imported lazily to keep start-up light.
    if name == "record":
        from .models import record

        return record
    raise AttributeError(f"module 'neurokpflow' has no attribute {name!r}")

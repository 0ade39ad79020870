"""KPFlow operators: δz = −η · P K P* · Err, matrix-free.

* :mod:`neurokpflow.kpflow.linop` — the operator algebra (``A(v)``, ``A.T``, ``A @ B``, sums, dense views);
* :mod:`neurokpflow.kpflow.operators` — ``J_theta``, ``K``, ``P``, ``P_inv``, ``NTK`` of a recurrent cell;
* :mod:`neurokpflow.kpflow.cells` — how torch and custom cells are brought into flat-state form;
* spectral tools: :mod:`.reductions` (partial trace, block average), :mod:`.estimators` (trace,
  Frobenius norm, alignment with error bars), :mod:`.ranks` (effective rank ER1–ER5),
  :mod:`.eigen` (eigsh, svds, norms), :mod:`.lyapunov`, :mod:`.structured` (exact K of
  unit-separable cells).
"""
from .linop import (
    LinearOperator,
    FunctionOperator,
    OperatorHooks,
    DenseOperator,
    IdentityOperator,
    identity,
    as_operator,
)
from .cells import as_state_cell
from .operators import BuildOptions, operators, operators_from_model, KPFlowOperators
from .reductions import partial_trace, block_average
from .estimators import Estimate, Sketch, trace, frobenius_norm, alignment, sketch
from .ranks import RankOptions, effective_rank
from .eigen import KrylovOptions, eigsh, svds, operator_norm, smallest_singular_value, EigenResult, SVDResult, ConvergenceError
from .lyapunov import lyapunov_spectrum, kaplan_yorke_dimension
from .structured import unit_separable_K, UnitSeparableK

__all__ = [
    "LinearOperator",
    "FunctionOperator",
    "OperatorHooks",
    "DenseOperator",
    "IdentityOperator",
    "identity",
    "as_operator",
    "as_state_cell",
    "operators",
    "BuildOptions",
    "operators_from_model",
    "KPFlowOperators",
    "partial_trace",
    "block_average",
    "Estimate",
    "trace",
    "frobenius_norm",
    "alignment",
    "sketch",
    "Sketch",
    "effective_rank",
    "RankOptions",
    "eigsh",
    "KrylovOptions",
    "KrylovOptions",
    "svds",
    "operator_norm",
    "smallest_singular_value",
    "EigenResult",
    "SVDResult",
    "ConvergenceError",
    "lyapunov_spectrum",
    "kaplan_yorke_dimension",
    "unit_separable_K",
    "UnitSeparableK",
]

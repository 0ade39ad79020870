"""KPFlow operators: δz = −η · P K P* · Err, matrix-free.

* :mod:`neurokpflow.kpflow.linop` — the operator algebra (``A(v)``, ``A.T``, ``A @ B``, sums, dense views);
* :mod:`neurokpflow.kpflow.operators` — ``J_theta``, ``K``, ``P``, ``P_inv``, ``NTK`` of a recurrent cell;
* :mod:`neurokpflow.kpflow.cells` — how torch and custom cells are brought into flat-state form.
"""
from .linop import (
    LinearOperator,
    FunctionOperator,
    DenseOperator,
    IdentityOperator,
    identity,
    as_operator,
)
from .cells import as_state_cell
from .operators import operators, operators_from_model, KPFlowOperators

__all__ = [
    "LinearOperator",
    "FunctionOperator",
    "DenseOperator",
    "IdentityOperator",
    "identity",
    "as_operator",
    "as_state_cell",
    "operators",
    "operators_from_model",
    "KPFlowOperators",
]

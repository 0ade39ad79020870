"""KPFlow operators: δz = −η · P K P* · Err, matrix-free.

See ``neurokpflow.kpflow.linop`` for the operator algebra and
``neurokpflow.kpflow.operators`` for J_θ, K, P, P⁻¹ and the hidden-state NTK.
"""
from .linop import (
    LinearOperator,
    FunctionOperator,
    DenseOperator,
    IdentityOperator,
    identity,
    as_operator,
)

__all__ = [
    "LinearOperator",
    "FunctionOperator",
    "DenseOperator",
    "IdentityOperator",
    "identity",
    "as_operator",
]

from .evaluator import (
    EVALUATOR_REGISTRY,
    Classification,
    EvaluatorBase,
    build_evaluator,
    confusion_matrix_normalized,
    macro_f1_score,
)

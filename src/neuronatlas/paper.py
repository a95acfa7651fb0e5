"""What the paper says: the numbers it reports, for the report to set this run's beside
(its figure captions are quoted in each figure's module, :mod:`.figures`).

Source: Auer, *Visualising the Hidden Neurons of a Non-convolutional DNN Trained on
the MNIST Database* (the project's specification).
"""

from __future__ import annotations

#: Numbers the paper reports ("DNN Configuration and Training", Figures 2 and 5).
NUMBERS = {
    "test_accuracy": 0.9806,
    "final_ema_loss": 0.01,
    "adversarial_confidence": 0.99,  # "classified ... incorrectly with high confidence (over 0.99)"
    "fig2_example": {"label": 3, "target": 1, "original": 0.992693, "adversarial": 0.999211},
    "fig5_max_ratio": 2.14,
}

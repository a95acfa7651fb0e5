"""What the paper says: its numbers and its figure captions, quoted for the report.

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

#: The paper's captions of Figures 1-7, verbatim.
CAPTIONS = {
    "fig1": (
        'Images optimised for target nodes without any regularisation, above counterparts '
        'which differ only by the usage of a `numpy.clip` function during and after '
        'optimisation. The number of optimisation steps was held constant at 50 for the '
        'output layers and 25 for the hidden layers (due to their different activation '
        'functions). The clipped images have a smaller range of pixel values and therefore '
        'appear less noisy, despite no other regularisation being used. The activation of '
        'each image is written below it in green text, and the activation of the second-most '
        'activated node below this in grey text.'
    ),
    "fig2": (
        'MNIST images alongside the adversarial examples generated from each of them by the '
        'visualisation optimiser. The first large bar below each image shows the activation '
        'of the most activated output node for that image (green for correct, red for '
        'incorrect), as a percentage, with the node number. The size of the bar also '
        'represents this – in green for the correct classification, and red for an incorrect '
        'classification. The second, lighter and smaller bar (not to scale) shows what '
        'proportion of the total activations from other nodes (in gray) come from the node '
        'corresponding to the other image in the pair (same colour scheme).'
    ),
    "fig3": (
        'Images optimised for activation of a target output neuron (0, 3, or 5), alongside '
        'the average of all MNIST images which highly activate that node (left side). Each '
        'row corresponds to a node. TV regularisation weight increases exponentially towards '
        'the right side of the figure, starting from 0.004 and ending at 0.256. All images '
        'were initialised from near-zero values, and optimised for 100 steps (with clipping) '
        'to ensure high activation of the target node. The activation induced by each image '
        'is written below it in red.'
    ),
    "fig4": (
        'Images optimised for activation of the output neuron 3, with varying levels of TV '
        'and L1 regularisation. The former increases downwards (exponentially) and the latter'
        ' increases rightwards (linearly). The L1 regularisation weights are written as a '
        'percentage of the TV regularisation weight for each row. All images were initialised'
        ' from near-zero values and optimised for 100 steps. The activation induced by each '
        'image is written below it in red, in a red box with opacity equal to the error, '
        'i.e., 1 minus the activation.'
    ),
    "fig5": (
        'Images optimised for activation of neuron 1 in hidden layer 7, with TV '
        'regularisation increasing downwards (exponentially) and L1 regularisation increasing'
        ' rightwards (linearly). L1 weights are written as percentages of TV weights again. '
        'All images were initialised from near-zero values and optimised for only 30 steps, '
        'to limit extreme values. Written below each image is its activation of the target '
        'node divided by the next-highest node activation, with the raw target node '
        'activation in brackets. The opacity of the red boxes underneath the activation '
        "values is 1 minus that images' activation ratio divided by the maximum ratio 2.14. "
        'These opacities are very similar to those in Figure 4, indicating that the '
        'regularisations had a similar effect on error.'
    ),
    "fig6": (
        'Visualisations of select nodes in hidden layers 7 and 5, with some different '
        'hyper-parameters, specified above each set of images. Below each image is written '
        '(in red) the ratio of its activation of the target to the next-highest node '
        'activation, with the raw target node activation in brackets. Further below these in '
        'light black font are the top 3 activations induced in the output layer when querying'
        ' the DNN again with the visualisation.'
    ),
    "fig7": (
        'Visualisations of select nodes in hidden layers 3 and 1. All quantities are '
        'displayed in the same format as Figure 6.'
    ),
}

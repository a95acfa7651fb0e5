"""The image side of the paper's data, named once: MNIST images are 28 x 28 grey pixels,
784 inputs. Everything else takes a model's own ``input_shape`` (height, width,
channels); these are only the defaults where no model says otherwise."""

MNIST_SIDE = 28
MNIST_SHAPE = (MNIST_SIDE, MNIST_SIDE, 1)
MNIST_PIXELS = MNIST_SIDE * MNIST_SIDE  # 784

"""One SGD step of the MLP, in place, on buffers allocated once.

The maths is exactly :meth:`MLP.loss_and_grads` followed by ``p -= lr * grad``
(tests hold the two together); the differences are all about speed at batch 32:

* every activation and gradient buffer is preallocated and reused;
* every GEMM runs through a :class:`~neuronatlas.nn.blas.GemmPlan` bound once;
* the weight update is fused into the gradient GEMM (``beta = 1``, ``alpha = -lr``),
  so ``dL/dW`` is never materialised;
* layer 1's ``dL/dX`` is not computed (nothing needs it);
* every hidden layer runs through :class:`~neuronatlas.nn.kernels.HiddenKernel`, the
  kernel the visualiser's backward engine (:mod:`.backprop`) shares: ReLU in place on
  the activations (ReLU'(z) = [a > 0]), another activation keeping f'(z) from the
  forward pass (element-wise work only);
* the SoftMax is fused with the cross-entropy (the loss needs log sum exp).

A bias-free Linear keeps its zero bias: its update is skipped.
"""

from __future__ import annotations

import numpy as np

from .blas import GemmPlan
from .kernels import HiddenKernel
from .mlp import MLP


class SGDStep:
    """``step(x, labels) -> loss`` updates ``model``'s arrays in place.

    ``x`` is (batch, in) and ``labels`` (batch,) int; batches must have the size
    the step was built for. The returned loss is the batch's mean cross-entropy
    before the update.
    """

    def __init__(self, model: MLP, batch_size: int, lr: float, grad_scale: float = 1.0,
                 use_blas: bool = True):
        self.model, self.batch_size, self.grad_scale = model, batch_size, grad_scale
        dt, B, L = model.dtype, batch_size, model.n_layers
        self._rows = np.arange(B)
        # h[l]: layer l's activation (h[0] the input, h[L] logits then probabilities)
        self.h = [np.empty((B, n), dt) for n in model.sizes]
        # d[l]: dL/dz of layer l (d[0] unused)
        self.d = [np.empty((B, n), dt) for n in model.sizes]
        # hidden[l]: layer l's activation and what its backward keeps (l = 1..L-1)
        self.hidden = [None] + [HiddenKernel(act, B, n, dt) for n, act in
                                zip(model.sizes[1:-1], model.activation_fns)]
        self.bias_grad = [np.empty(n, dt) for n in model.sizes[1:]]
        W = model.weights
        self.fwd = [GemmPlan(self.h[l], W[l], self.h[l + 1], trans_b=True, use_blas=use_blas)
                    for l in range(L)]  # (B,in)@(in,out) -> (B,out)
        self.bwd = [GemmPlan(self.d[l + 1], W[l], self.d[l], use_blas=use_blas)
                    for l in range(1, L)]  # (B,out)@(out,in) -> (B,in)
        self.upd = [GemmPlan(self.d[l + 1], self.h[l], W[l], trans_a=True, beta=1.0,
                             use_blas=use_blas)
                    for l in range(L)]  # W += alpha * (out,B)@(B,in)
        self.set_lr(lr)

    def set_lr(self, lr: float) -> None:
        self.lr = lr
        self._alpha = -lr * self.grad_scale
        for plan in self.upd:
            plan.set_alpha(self._alpha)

    def __call__(self, x: np.ndarray, labels: np.ndarray) -> float:
        h, d, L, b = self.h, self.d, self.model.n_layers, self.model.biases
        np.copyto(h[0], x)
        for l in range(L):
            self.fwd[l]()  # h[l+1] = h[l] @ W.T: (B,in)@(in,out) -> (B,out)
            h[l + 1] += b[l]
            if l < L - 1:
                self.hidden[l + 1].forward(h[l + 1])  # f(z) in place, f'(z) kept
        # SoftMax + mean cross-entropy from the logits (Appendix 1): loss = lse(z) - z_t
        z = h[L]
        z -= z.max(axis=1, keepdims=True)
        z_target = z[self._rows, labels]
        np.exp(z, out=z)
        total = z.sum(axis=1, keepdims=True)
        z /= total
        loss = float(np.mean(np.log(total[:, 0]) - z_target))
        # dL/dz_out = (y - t) / B
        inv_b = 1.0 / self.batch_size
        np.multiply(z, inv_b, out=d[L])
        d[L][self._rows, labels] -= inv_b
        for l in range(L, 0, -1):
            if l > 1:
                # d[l-1] = d[l] @ W_l, before W_l changes: (B,out)@(out,in) -> (B,in)
                self.bwd[l - 2]()
            self.upd[l - 1]()  # W_l -= lr * d[l]^T h[l-1]: (out,B)@(B,in) -> (out,in)
            if self.model.has_bias[l - 1]:
                g = self.bias_grad[l - 1]
                np.sum(d[l], axis=0, out=g)
                g *= self._alpha
                b[l - 1] += g
            if l > 1:
                self.hidden[l - 1].backward(d[l - 1], h[l - 1])  # dL/dz = dL/da * f'(z)
        return loss

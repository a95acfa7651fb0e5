"""Parametrisations: what the optimiser changes, and how it becomes an image.

Each one holds its parameters ``p`` for a batch of rows, makes the images from them
(:meth:`image`, rows (R, H*W*C) channel-last) and takes a gradient with respect to the
images back to the parameters (:meth:`backward`, the adjoint of the image map's
Jacobian), side by side:

* :class:`PixelParam`: the pixels themselves (the paper).
* :class:`FourierParam`: x = irfft2(S * (a + i b)) with S = 1 / max(f, 1/max(H, W))^decay,
  the decorrelated parametrisation of Olah, Mordvintsev & Schubert (Distill 2017; lucent's
  ``param.spatial.fft_image``): a step of the same size in every coefficient changes coarse
  structure more than fine, so gradient ascent builds the image from low frequencies up.
* :class:`MacoParam`: x = irfft2(M * exp(i phi)) with M fixed to the training set's mean
  magnitude spectrum and only the phase phi optimised (MACO, Fel et al., NeurIPS 2023):
  the image keeps the spectrum of real digits, so it cannot drift into high-frequency noise.

The transforms use ``numpy.fft`` with ``norm="ortho"``. In the half spectrum of rfft2
every column but the first (and the last, for an even width) stands for itself and its
mirror image, so the adjoint counts it twice (:func:`_column_weights`).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError


def _image(x: np.ndarray, shape) -> np.ndarray:
    """(R, D) rows as (R, H, W, C) images."""
    return x.reshape(-1, *shape)


def frequencies(shape) -> np.ndarray:
    """|f| of every coefficient of rfft2 on an image of ``shape``, (H, W//2+1, 1)."""
    h, w = shape[:2]
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    return np.sqrt(fy * fy + fx * fx)[:, :, None]


def _column_weights(shape, dtype) -> np.ndarray:
    """1 for the rfft2 columns without a mirror (0, and W/2 when W is even), 2 for the rest."""
    w = shape[1]
    cols = np.full(w // 2 + 1, 2.0)
    cols[0] = 1.0
    if w % 2 == 0:
        cols[-1] = 1.0
    return cols.astype(dtype)[None, None, :, None]


def _spectrum(x: np.ndarray, shape) -> np.ndarray:
    return np.fft.rfft2(_image(x, shape), axes=(1, 2), norm="ortho")


def _pixels(c: np.ndarray, shape) -> np.ndarray:
    h, w = shape[:2]
    return np.fft.irfft2(c, s=(h, w), axes=(1, 2), norm="ortho").reshape(len(c), -1)


def _spectrum_adjoint(g: np.ndarray, shape) -> np.ndarray:
    """The adjoint of :func:`_pixels` for a real gradient g: dL/dRe c + i dL/dIm c."""
    return _spectrum(g, shape) * _column_weights(shape, g.dtype)


class PixelParam:
    """The pixels are the parameters (the paper's visualiser)."""

    def __init__(self, x0: np.ndarray, shape):
        self.p = np.array(x0)
        self.shape = shape

    def image(self) -> np.ndarray:
        return self.p

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g

    def set_image(self, x: np.ndarray) -> None:
        self.p[...] = x


class FourierParam:
    """x = irfft2(S * (a + i b)), S = 1 / max(|f|, 1/max(H, W))^decay; p = (a, b) as
    (R, 2, H, W//2+1, C). Starts exactly at the given images."""

    def __init__(self, x0: np.ndarray, shape, decay: float):
        self.shape = shape
        f = frequencies(shape)
        floor = 1.0 / max(shape[0], shape[1])
        self.scale = (1.0 / np.maximum(f, floor) ** decay).astype(x0.dtype)
        self.p = np.empty((len(x0), 2, *self.scale.shape[:2], shape[2]), x0.dtype)
        self.set_image(x0)

    def image(self) -> np.ndarray:
        c = (self.p[:, 0] + 1j * self.p[:, 1]) * self.scale
        return _pixels(c, self.shape).astype(self.p.dtype, copy=False)

    def backward(self, g: np.ndarray) -> np.ndarray:
        gc = _spectrum_adjoint(g, self.shape) * self.scale
        return np.stack([gc.real, gc.imag], axis=1).astype(self.p.dtype, copy=False)

    def set_image(self, x: np.ndarray) -> None:
        c = _spectrum(x, self.shape) / self.scale
        self.p[:, 0], self.p[:, 1] = c.real, c.imag


def mean_magnitude(images: np.ndarray, shape, chunk: int = 4096) -> np.ndarray:
    """The mean |rfft2| (ortho) of ``images`` (N, D): MACO's fixed magnitude, (H, W//2+1, C)."""
    total = np.zeros((shape[0], shape[1] // 2 + 1, shape[2]))
    for s in range(0, len(images), chunk):
        total += np.abs(_spectrum(np.asarray(images[s:s + chunk], np.float64), shape)).sum(0)
    return total / max(len(images), 1)


class MacoParam:
    """x = irfft2(M * exp(i phi)): M fixed (the data's mean magnitude), p = phi as
    (R, H, W//2+1, C). The phase starts at the start image's where that has energy, and
    at ``random_phase`` (one per row, uniform on [-pi, pi)) elsewhere."""

    def __init__(self, x0: np.ndarray, shape, magnitude: np.ndarray, random_phase: np.ndarray):
        m = np.asarray(magnitude)
        want = (shape[0], shape[1] // 2 + 1, shape[2])
        if m.shape != want or not np.isfinite(m).all() or (m < 0).any():
            raise ConfigError(f"maco needs a finite, non-negative magnitude spectrum of shape "
                              f"{want}, got {m.shape}")
        self.shape, self.magnitude = shape, m.astype(x0.dtype)
        c0 = _spectrum(x0, shape)
        energy = np.abs(c0)
        has = energy > 1e-6 * energy.reshape(len(x0), -1).max(axis=1)[:, None, None, None]
        self.p = np.where(has, np.angle(c0), random_phase).astype(x0.dtype)

    def image(self) -> np.ndarray:
        return _pixels(self.magnitude * np.exp(1j * self.p), self.shape).astype(
            self.p.dtype, copy=False)

    def backward(self, g: np.ndarray) -> np.ndarray:
        # d/dphi of Re/Im(M e^{i phi}) = M (-sin phi, cos phi)
        gc = _spectrum_adjoint(g, self.shape)
        return (self.magnitude * (gc.imag * np.cos(self.p) - gc.real * np.sin(self.p))
                ).astype(self.p.dtype, copy=False)


#: every parametrisation by its VisConfig name (config.VIS_PARAMS lists the same names):
#: how each is built from the start images and the options that concern it
PARAMS = {
    "pixel": lambda x0, shape, decay, magnitude, phase: PixelParam(x0, shape),
    "fourier": lambda x0, shape, decay, magnitude, phase: FourierParam(x0, shape, decay),
    "maco": lambda x0, shape, decay, magnitude, phase: MacoParam(x0, shape, magnitude, phase),
}


def make_param(name: str, x0: np.ndarray, shape, *, decay: float = 1.0,
               magnitude: np.ndarray | None = None, random_phase: np.ndarray | None = None):
    """The parametrisation called ``name``, starting at images ``x0`` (R, D)."""
    if name not in PARAMS:
        raise ConfigError(f"unknown parametrisation {name!r}; one of {', '.join(PARAMS)}")
    if name == "maco" and magnitude is None:
        raise ConfigError("param 'maco' needs the data's mean magnitude spectrum")
    return PARAMS[name](x0, shape, decay, magnitude, random_phase)

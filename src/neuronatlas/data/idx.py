"""The IDX file format of MNIST and Fashion-MNIST: parse, gunzip (bounded), verify.

An IDX file is a big-endian magic number (0x0000080N: unsigned bytes, N dimensions),
N dimension sizes, then the bytes. A file is trusted only once its magic number,
dimensions, length and sha256 all match its :class:`IdxSpec`.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from dataclasses import dataclass

import numpy as np

from ..errors import CorruptFileError


@dataclass(frozen=True)
class IdxSpec:
    name: str
    sha256: str  # of the uncompressed file
    magic: int  # 0x00000801 labels (ubyte, 1 dim), 0x00000803 images (ubyte, 3 dims)
    shape: tuple[int, ...]

    @property
    def n_bytes(self) -> int:
        """Length of the uncompressed file."""
        return 4 + 4 * len(self.shape) + math.prod(self.shape)

    def header(self) -> bytes:
        return self.magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in self.shape)


def parse_idx(raw: bytes, spec: IdxSpec | None = None) -> np.ndarray:
    """Parse an unsigned-byte IDX file; check magic, dimensions and length.

    Raises :class:`CorruptFileError` with the reason when anything is off.
    """
    if len(raw) < 4:
        raise CorruptFileError(f"only {len(raw)} bytes, too short for an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if magic >> 8 != 0x08 or not 1 <= magic & 0xFF <= 3:
        raise CorruptFileError(f"magic number 0x{magic:08x} is not an unsigned-byte IDX file")
    if spec is not None and magic != spec.magic:
        raise CorruptFileError(f"magic number 0x{magic:08x}, expected 0x{spec.magic:08x}")
    ndim = magic & 0xFF
    if len(raw) < 4 + 4 * ndim:
        raise CorruptFileError("truncated inside the IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if spec is not None and shape != spec.shape:
        raise CorruptFileError(f"dimensions {shape}, expected {spec.shape}")
    expected = 4 + 4 * ndim + math.prod(shape)
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise CorruptFileError(f"{what}: {len(raw)} bytes, expected {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def gunzip(raw: bytes, limit: int) -> bytes:
    """Decompress a gzip stream, stopping at ``limit + 1`` bytes: a stream that inflates
    beyond what the file can be (a gzip bomb) is refused without inflating the rest."""
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise CorruptFileError(f"broken gzip stream ({exc})") from None
    if len(out) > limit:
        raise CorruptFileError(f"gzip stream inflates to more than the {limit} bytes expected")
    if not d.eof:
        raise CorruptFileError("broken gzip stream (ends early)")
    return out


def verify(raw: bytes, spec: IdxSpec) -> np.ndarray:
    """IDX checks (of the decompressed stream when ``raw`` is gzip), then the sha256."""
    if raw[:2] == b"\x1f\x8b":  # a gzip stream
        raw = gunzip(raw, spec.n_bytes)
    array = parse_idx(raw, spec)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != spec.sha256:
        raise CorruptFileError(f"sha256 {digest[:12]}... does not match {spec.sha256[:12]}...")
    return array

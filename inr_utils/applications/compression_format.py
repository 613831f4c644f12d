"""The ``.inrc`` file of :mod:`inr_utils.applications.compression`: a SIREN's quantised weights, entropy coded, with
everything needed to decode them back to an image.

Layout (little-endian; ``f16`` is IEEE half precision)::

    magic     4 bytes  b"INRC"
    version   u8       1
    height    u16      image rows H
    width     u16      image columns W
    channels  u8       C (1 grayscale, 3 colour)
    hidden    u16      SIREN width
    depth     u8       SIREN hidden layers after the first (``MLPOptions.depth``)
    omega0    f16 x 2  first layer's and hidden layers' omega0
    bits      u8       nominal bit depth b (that of most weights)
    coder     u8       how the codes are stored (:data:`CODERS`)
    depths    T x u8   bit depth b_t of each tensor (1 ... 16; the first layer's may be higher than b)
    tensors   T x (offset f16, scale f16[, mean f16, std f16 for the ANS coders])
    payload   the coded integers of the T tensors, in parameter-tree order, each tensor flattened row-major
    crc32     u32      of every byte before it

Tensor ``t`` dequantises as ``w = offset_t + scale_t * q`` with ``q in {0, ..., 2^b_t - 1}``. T, the tensors' shapes
and their order follow from the architecture (``model_components`` SIREN preset with the header's width, depth,
omega0 and C), so no shapes are stored. The bits per pixel of a file are ``8 * len(file) / (H * W)``: the header
counts.

Coders (the encoder writes the one that gives the fewest bytes): ``raw`` (codes bit-packed, b bits each), ``zlib``
(raw deflate, level 9) and ``lzma`` (raw LZMA2, preset 9e) of the codes as bytes (per tensor: one byte each for
b_t <= 8, else the high bytes then the low bytes), and ``ans-gauss`` / ``ans-laplace``: asymmetric numeral systems
(Duda 2013) with ``constriction``, each tensor's codes modelled as a quantised Gaussian / Laplace distribution whose
mean and standard deviation (as fractions of ``2^b_t - 1``) are in its header entry.
"""

from __future__ import annotations

import dataclasses
import lzma
import struct
import zlib
from collections.abc import Sequence

import numpy as np

from inr_utils.errors import InputError

MAGIC = b"INRC"
VERSION = 1
MIN_BITS, MAX_BITS = 1, 16
#: Coder id -> name; the id is the header's ``coder`` byte.
CODERS = {0: "raw", 1: "zlib", 2: "lzma", 3: "ans-gauss", 4: "ans-laplace"}
_CODER_IDS = {name: i for i, name in CODERS.items()}
_HEADER = struct.Struct("<4sBHHBHBeeBB")
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]


def check_bits(bits: int) -> int:
    """``bits`` if the format holds it (a whole number in 1 ... 16), else :class:`InputError`."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not MIN_BITS <= bits <= MAX_BITS:
        raise InputError(f"bit depth {bits!r} cannot be stored: the .inrc format holds {MIN_BITS} to {MAX_BITS} bits "
                         "per weight; use e.g. --bits 8")
    return int(bits)


@dataclasses.dataclass(frozen=True)
class CompressedImage:
    """One ``.inrc`` file, parsed: header fields and the integer codes of every tensor.

    Attributes:
      height, width, channels: the image's size ``(H, W, C)``.
      hidden, depth, omega0, first_omega0: the SIREN (``model_config("siren", width=hidden, depth=depth, ...)``).
      bits: nominal bit depth b (the header's).
      offsets, scales: ``(T,)`` float16 per-tensor dequantisation ``w = offset + scale * q``.
      codes: T integer arrays (uint16), tensor t flattened, values in ``[0, 2^b_t - 1]``.
      depths: ``(T,)`` bit depth b_t of each tensor.
      coder: name in :data:`CODERS` the payload is coded with.
    """

    height: int
    width: int
    channels: int
    hidden: int
    depth: int
    omega0: float
    first_omega0: float
    bits: int
    offsets: np.ndarray
    scales: np.ndarray
    codes: tuple[np.ndarray, ...]
    depths: tuple[int, ...]
    coder: str = "lzma"

    def to_bytes(self, coder: str | None = None) -> bytes:
        """The file's bytes with ``coder`` (default: this one's; ``"best"``: the smallest of all coders)."""
        coder = coder or self.coder
        if coder == "best":
            return min((self.to_bytes(name) for name in CODERS.values()), key=len)
        for bits in (self.bits, *self.depths):
            check_bits(bits)
        if coder not in _CODER_IDS:
            raise InputError(f"unknown coder {coder!r}; choose one of: {', '.join(CODERS.values())}, best")
        depths = [int(b) for b in self.depths]
        codes = [np.asarray(c).astype(np.int64).ravel() for c in self.codes]
        if any(c.size and (c.min() < 0 or c.max() >= 1 << b) for c, b in zip(codes, depths, strict=True)):
            raise ValueError(f"codes outside their bit depths {depths}")
        header = _HEADER.pack(MAGIC, VERSION, self.height, self.width, self.channels, self.hidden, self.depth,
                              self.first_omega0, self.omega0, self.bits, _CODER_IDS[coder])
        entries = np.stack([np.asarray(self.offsets, np.float16), np.asarray(self.scales, np.float16)], axis=1)
        if coder.startswith("ans"):
            entries = np.concatenate([entries, _ans_statistics(codes, depths)], axis=1)
        body = (header + bytes(depths) + entries.astype("<f2").tobytes()
                + _encode_payload(codes, depths, coder, entries))
        return body + struct.pack("<I", zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes, shapes: Sequence[tuple[int, ...]] | None = None, name: str = "file",
                   ) -> CompressedImage:
        """Parses a file's bytes; ``shapes`` are the tensors' shapes (default: from the header's architecture).

        Raises:
          InputError: not an ``.inrc`` file, another version, truncated or corrupt (the CRC or the payload
            does not match), naming ``name``.
        """
        bad = f"'{name}' is not a valid .inrc file"
        if len(data) < _HEADER.size + 4 or data[:4] != MAGIC:
            raise InputError(f"{bad} (no INRC header; it is truncated or another kind of file); "
                             "pass a file written by experiments/compress.py encode")
        if struct.unpack("<I", data[-4:])[0] != zlib.crc32(data[:-4]):
            raise InputError(f"{bad}: its checksum does not match (the file is corrupt or truncated); "
                             "encode the image again")
        (_, version, height, width, channels, hidden, depth, first_omega0, omega0, bits,
         coder_id) = _HEADER.unpack_from(data)
        if version != VERSION:
            raise InputError(f"{bad}: format version {version}, this decoder reads version {VERSION}; "
                             "use the matching flax-inr version")
        if coder_id not in CODERS or not MIN_BITS <= bits <= MAX_BITS or min(height, width, channels, hidden) < 1:
            raise InputError(f"{bad}: its header is inconsistent (coder {coder_id}, {bits} bits); "
                             "encode the image again")
        coder = CODERS[coder_id]
        if shapes is None:
            from inr_utils.applications.compression import SirenArchitecture

            shapes = SirenArchitecture(hidden, depth, omega0, first_omega0).tensor_shapes(channels)
        columns = 4 if coder.startswith("ans") else 2
        first = _HEADER.size + len(shapes)
        start = first + 2 * columns * len(shapes)
        if start > len(data) - 4:
            raise InputError(f"{bad}: it ends inside its header (truncated); encode the image again")
        depths = tuple(data[_HEADER.size:first])
        if not all(MIN_BITS <= b <= MAX_BITS for b in depths):
            raise InputError(f"{bad}: its header is inconsistent (bit depths {depths}); encode the image again")
        entries = np.frombuffer(data[first:start], "<f2").reshape(len(shapes), columns).astype(np.float16)
        sizes = [int(np.prod(s)) for s in shapes]
        try:
            flat = _decode_payload(data[start:-4], sizes, depths, coder, entries)
        except (ValueError, lzma.LZMAError, zlib.error, RuntimeError) as err:
            raise InputError(f"{bad}: its payload does not decode ({err}); encode the image again") from None
        codes = tuple(np.split(flat.astype(np.uint16), np.cumsum(sizes)[:-1]))
        return cls(height, width, channels, hidden, depth, float(omega0), float(first_omega0), bits,
                   entries[:, 0].copy(), entries[:, 1].copy(), codes, depths, coder)

    def dequantized(self) -> list[np.ndarray]:
        """The T tensors' float32 values ``offset + scale * q`` (flat)."""
        return [np.float32(o) + np.float32(s) * c.astype(np.float32)
                for o, s, c in zip(self.offsets, self.scales, self.codes, strict=True)]


def bits_per_pixel(num_bytes: int, height: int, width: int) -> float:
    """Exact bits per pixel of a file of ``num_bytes`` bytes for an ``height x width`` image: ``8 n / (H W)``."""
    return 8.0 * num_bytes / (height * width)


# --------------------------------------------------------------------------------------------- coders


def _ans_statistics(codes: Sequence[np.ndarray], depths: Sequence[int]) -> np.ndarray:
    """``(T, 2)`` float16: each tensor's mean and standard deviation of its codes as fractions of its
    ``2^b_t - 1``."""
    stats = []
    for c, bits in zip(codes, depths, strict=True):
        levels = (1 << bits) - 1
        mean = float(c.mean()) if c.size else 0.0
        std = float(c.std()) if c.size > 1 else 1.0
        stats.append((mean / levels, std / levels))
    return np.asarray(stats, np.float16)


def _ans_model(coder: str, entries: np.ndarray, sizes: Sequence[int], depths: Sequence[int]):
    """constriction's model family (support: the largest bit depth's levels) and the per-symbol means and
    standard deviations (float64) of a payload."""
    import constriction

    levels = np.array([(1 << b) - 1 for b in depths], np.float64)
    means = np.repeat(entries[:, 2].astype(np.float64) * levels, sizes)
    # a floor of half a level keeps a constant tensor's distribution proper (the codes still cost ~0 bits)
    stds = np.maximum(np.repeat(entries[:, 3].astype(np.float64) * levels, sizes), 0.5)
    family = constriction.stream.model.QuantizedGaussian if coder == "ans-gauss" else \
        constriction.stream.model.QuantizedLaplace
    if coder == "ans-laplace":
        stds = stds / np.sqrt(2.0)  # Laplace scale b: standard deviation sqrt(2) b
    return family(0, int(levels.max())), means, stds


def _encode_payload(codes: Sequence[np.ndarray], depths: Sequence[int], coder: str, entries: np.ndarray) -> bytes:
    flat = np.concatenate(codes) if codes else np.zeros(0, np.int64)
    if coder == "raw":
        bits = np.concatenate([((c[:, None] >> np.arange(b - 1, -1, -1)) & 1).ravel()  # most significant first
                               for c, b in zip(codes, depths, strict=True)]) if codes else np.zeros(0, np.int64)
        return np.packbits(bits.astype(np.uint8)).tobytes()
    if coder.startswith("ans"):
        import constriction

        family, means, stds = _ans_model(coder, entries, [c.size for c in codes], depths)
        ans = constriction.stream.stack.AnsCoder()
        ans.encode_reverse(flat.astype(np.int32), family, means, stds)
        return ans.get_compressed().astype("<u4").tobytes()
    raw = b"".join(_as_byte_planes(c, b) for c, b in zip(codes, depths, strict=True))
    return zlib.compress(raw, 9)[2:-4] if coder == "zlib" else \
        lzma.compress(raw, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)


def _decode_payload(payload: bytes, sizes: Sequence[int], depths: Sequence[int], coder: str,
                    entries: np.ndarray) -> np.ndarray:
    """The codes of a payload (int64, the tensors' concatenated), or ``ValueError`` when it does not hold them."""
    count = sum(sizes)
    if coder == "raw":
        total = sum(n * b for n, b in zip(sizes, depths, strict=True))
        if len(payload) != (total + 7) // 8:
            raise ValueError(f"{len(payload)} bytes for {total} bits of codes")
        bits, out, start = np.unpackbits(np.frombuffer(payload, np.uint8)).astype(np.int64), [], 0
        for n, b in zip(sizes, depths, strict=True):
            out.append((bits[start:start + n * b].reshape(n, b) << np.arange(b - 1, -1, -1)).sum(axis=1))
            start += n * b
        return np.concatenate(out) if out else np.zeros(0, np.int64)
    if coder.startswith("ans"):
        import constriction

        if len(payload) % 4:
            raise ValueError("the ANS stream is not a whole number of 32-bit words")
        family, means, stds = _ans_model(coder, entries, sizes, depths)
        ans = constriction.stream.stack.AnsCoder(np.frombuffer(payload, "<u4").astype(np.uint32))
        flat = np.asarray(ans.decode(family, means, stds), np.int64)
        if not ans.is_empty():
            raise ValueError("data left over after the last code")
        return flat
    if coder == "zlib":
        raw = zlib.decompress(payload, -15)
    else:
        raw = lzma.decompress(payload, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
    if len(raw) != sum(n * (1 if b <= 8 else 2) for n, b in zip(sizes, depths, strict=True)):
        raise ValueError(f"{len(raw)} bytes for {count} codes")
    out, start = [], 0
    for n, b in zip(sizes, depths, strict=True):
        if b <= 8:
            out.append(np.frombuffer(raw[start:start + n], np.uint8).astype(np.int64))
        else:
            high, low = (np.frombuffer(raw[i:i + n], np.uint8).astype(np.int64) for i in (start, start + n))
            out.append((high << 8) | low)
        start += n * (1 if b <= 8 else 2)
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _as_byte_planes(flat: np.ndarray, bits: int) -> bytes:
    """Codes as bytes: one byte each (b <= 8), else all high bytes, then all low bytes (each plane compresses
    better on its own than interleaved)."""
    if bits <= 8:
        return flat.astype(np.uint8).tobytes()
    return (flat >> 8).astype(np.uint8).tobytes() + (flat & 0xFF).astype(np.uint8).tobytes()

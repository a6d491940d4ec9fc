"""Images as inputs of ``graphnet predict``: reading them, and turning them into a model's raw
examples the way its preprocessing record describes them.

    from graphnet.images import read_image, to_model_input
    pixels = read_image("digit.png")                       # (H, W) or (H, W, C) uint8
    x = to_model_input(pixels, [28, 28], "uint8")          # one raw example, shape (28, 28)

Reading. PNG is decoded here, with numpy and zlib only, so predicting on PNGs needs nothing beyond
graphnet's own dependencies: every color type (grayscale, RGB, palette, gray + alpha, RGBA), bit
depths 1, 2, 4, 8 and 16 (a 16-bit sample keeps its high byte), transparency
(``tRNS``: a palette's alphas, or a gray/RGB color key, which adds an alpha channel), the five
row filters, and Adam7 interlacing. Every other format (JPEG, GIF, BMP, WebP, TIFF...) goes through
Pillow when it is installed (``pip install 'graphnet[image]'``); JPEG's EXIF orientation is applied.
Speed: a 28 x 28 digit decodes in 2 ms; a 1000 x 1000 RGB photo in about 1 s (Pillow: 0.05 s),
as the row filters are undone one anti-diagonal of pixels at a time (see ``unfilter``).

What ``read_image`` returns: (H, W) for gray; (H, W, 2) gray + alpha; (H, W, 3) RGB; (H, W, 4)
RGBA (a palette becomes RGB, or RGBA when it has alphas). Always uint8.

Files from strangers: a malformed file (truncated, bad CRC, bad zlib stream, unknown critical
chunk, unsupported color type or bit depth, zero width or height, palette index out of range) is
one ``ImageError`` naming the file and what is wrong. Declared dimensions are checked against
``max_pixels`` before anything is allocated, and decompression stops at the size the header
declares (a zip bomb inflates no further than that).

Converting (``to_model_input``), in this order:

1. alpha is composited on ``background``, white by default: a transparent background shows as
   white in viewers and browsers, and strokes drawn with dark ink stay visible (on black they
   would vanish);
2. to grayscale with the ITU-R BT.601 luma, Y = 0.299 R + 0.587 G + 0.114 B, when the model's raw
   examples have no channel axis or one channel; a gray image is repeated when they have three;
3. ``invert`` (255 - v): False by default (nothing is changed unless asked); True inverts; None
   decides from the border: when the mean of the outermost rows and columns is above 127.5 the
   background is light and the image is inverted, so a dark digit on white paper becomes the white
   digit on black that MNIST models were trained on;
4. resized to the raw shape's height and width: area averaging on an axis that shrinks (each output
   pixel is the exact mean of the input area it covers), bilinear with half-pixel centres on one
   that grows. Aspect ratio is not kept: the image is stretched to the model's shape;
5. returned as the raw dtype: uint8 0..255 (rounded half to even), or float scaled to
   0..``float_max`` (1.0 by default: float images are usually 0..1).
"""

from __future__ import annotations

import io
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from .errors import DataError, clip, short

INSTALL = "pip install 'graphnet[image]' (or: pip install pillow)"
MAX_PIXELS = 40_000_000  # width x height refused past this (8000 x 5000), before allocating
MAX_FILE_BYTES = 512 << 20  # image files larger than this are refused before reading
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601


class ImageError(DataError):
    """An image file is missing, malformed or in a format that cannot be read, or an image does
    not fit the model's input."""


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------


def read_image(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The pixels of the image file at ``path``: (H, W) gray, (H, W, 2) gray + alpha, (H, W, 3)
    RGB or (H, W, 4) RGBA, uint8. PNG is decoded here; other formats need Pillow."""
    name = str(path)
    data = _read_file(Path(path), name)
    if data.startswith(PNG_SIGNATURE):
        return decode_png(data, name=name, max_pixels=max_pixels)
    return _read_with_pillow(data, name, max_pixels)


def _read_file(path: Path, name: str) -> bytes:
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise ImageError("is a folder, not an image file", file=name, hint="give the path of an image file")
        if size > MAX_FILE_BYTES:
            raise ImageError(f"the file holds {size:,} bytes; images over {MAX_FILE_BYTES:,} bytes are refused",
                             file=name, hint="give a smaller image")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError("no such file", file=name, hint="check the path") from None
    except OSError as error:
        raise ImageError(f"cannot read the file: {error.strerror or error}", file=name,
                         hint="check the path and the permissions") from None
    if not data:
        raise ImageError("the file is empty (0 bytes)", file=name, hint="give an image file")
    return data


# Formats recognised by their first bytes, to name them when Pillow is missing.
SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"BM", "BMP"),
    (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
)


def _format_name(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    for signature, format_name in SIGNATURES:
        if data.startswith(signature):
            return format_name
    return None


def _read_with_pillow(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    """Any format Pillow reads (first frame; EXIF orientation applied), as read_image returns it."""
    try:
        from PIL import Image, ImageOps
    except ImportError:
        kind = _format_name(data)
        if kind is None:
            raise ImageError(f"not a PNG file; it starts with {short(data[:8])}", file=name,
                             hint=f"give a PNG image; to read JPEG and other formats: {INSTALL}") from None
        raise ImageError(f"reading {kind} images needs Pillow, which is not installed", file=name,
                         hint=INSTALL + ", or convert the image to PNG") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            _check_size(image.size[0], image.size[1], name, max_pixels)
            image = ImageOps.exif_transpose(image)
            return _pillow_pixels(image)
    except ImageError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageError(f"not an image format graphnet or Pillow can read; it starts with {short(data[:8])}",
                         file=name, hint="give a PNG or JPEG image") from None
    except Exception as error:  # noqa: BLE001 - Pillow's plugins raise many kinds on a corrupt file
        kind = _format_name(data) or "image"
        raise ImageError(f"the {kind} file is corrupt or truncated: {clip(str(error), 200)}", file=name,
                         hint="re-export the image") from None


def _pillow_pixels(image) -> np.ndarray:
    """A Pillow image in one of the modes read_image returns (L, LA, RGB, RGBA), as uint8."""
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return np.array(image, dtype=np.uint8)
    if mode.startswith("I;16"):  # 16-bit gray: keep the high byte, as for PNG
        return (np.array(image).astype(np.uint32) >> 8).astype(np.uint8)
    if mode in ("I", "F"):  # 32-bit samples: taken as 0..255
        return np.clip(np.rint(np.array(image, dtype=np.float64)), 0, 255).astype(np.uint8)
    if mode == "1":
        return np.array(image.convert("L"), dtype=np.uint8)
    has_alpha = "A" in mode or "a" in mode or "transparency" in image.info
    return np.array(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.uint8)


def _check_size(width: int, height: int, name: str, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise ImageError(f"the image is {width}x{height} pixels: it holds no pixel", file=name,
                         hint="give a non-empty image")
    if width * height > max_pixels:
        raise ImageError(
            f"the image declares {width}x{height} pixels ({width * height:,}); images over "
            f"{max_pixels:,} pixels are refused", file=name, hint="scale the image down first",
        )


# ----------------------------------------------------------------------------------------------
# PNG (https://www.w3.org/TR/png-3/): chunks, zlib, row filters, samples
# ----------------------------------------------------------------------------------------------

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # color type -> samples per pixel
COLOR_TYPES = {0: "grayscale", 2: "RGB", 3: "palette", 4: "gray + alpha", 6: "RGBA"}
DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
# Adam7: (first column, first row, column step, row step) of each of the seven passes.
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
MAX_CHUNK = (1 << 31) - 1  # the largest chunk length the format allows
MAX_CHUNKS = 1_000_000  # chunks read before a file is refused (a file of empty chunks is no image)


@dataclass(frozen=True)
class PngHeader:
    width: int
    height: int
    depth: int  # bits per sample
    color_type: int
    interlaced: bool

    @property
    def channels(self) -> int:
        return CHANNELS[self.color_type]

    def row_bytes(self, width: int) -> int:
        return (width * self.channels * self.depth + 7) // 8

    def passes(self) -> list[tuple[int, int, int, int, int, int]]:
        """(x0, y0, dx, dy, width, height) of each sub-image stored: the whole image, or the
        non-empty Adam7 passes (an empty pass stores nothing, not even filter bytes)."""
        if not self.interlaced:
            return [(0, 0, 1, 1, self.width, self.height)]
        passes = []
        for x0, y0, dx, dy in ADAM7:
            width = max(0, -(-(self.width - x0) // dx))
            height = max(0, -(-(self.height - y0) // dy))
            if width and height:
                passes.append((x0, y0, dx, dy, width, height))
        return passes

    def data_bytes(self) -> int:
        """What the zlib stream inflates to: each row of each pass, with its filter byte."""
        return sum(h * (1 + self.row_bytes(w)) for _, _, _, _, w, h in self.passes())


def decode_png(data: bytes, *, name: str = "<png>", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The pixels of a PNG file's bytes, as :func:`read_image` returns them. ``name`` is the file
    named in errors."""
    if not data.startswith(PNG_SIGNATURE):
        raise ImageError(f"not a PNG file; it starts with {short(bytes(data[:8]))}", file=name)
    header: PngHeader | None = None
    palette: np.ndarray | None = None
    transparency: bytes | None = None
    inflater: _Inflater | None = None
    for kind, body, offset in _chunks(data, name):
        if header is None and kind != b"IHDR":
            raise ImageError(f"the first chunk is {kind.decode()}, not IHDR (at byte {offset})", file=name,
                             hint="the file is not a valid PNG; re-export it")
        if kind == b"IHDR":
            if header is not None:
                raise ImageError(f"a second IHDR chunk at byte {offset}", file=name, hint="re-export the image")
            header = _parse_header(body, name, max_pixels)
            inflater = _Inflater(header.data_bytes(), name)
        elif kind == b"PLTE":
            palette = _parse_palette(body, name)
        elif kind == b"tRNS":
            transparency = bytes(body)
        elif kind == b"IDAT":
            inflater.feed(body)
        elif kind == b"IEND":
            break
        elif not kind[0] & 0x20:  # an uppercase first letter: a chunk a decoder must understand
            raise ImageError(f"unsupported critical chunk {kind.decode()} at byte {offset}", file=name,
                             hint="re-export the image as a plain PNG")
        # other ancillary chunks (text, gamma, physical size...) do not change the pixels
    stream = inflater.finish()
    samples = _decode_passes(stream, header, name)
    return _to_8bit(samples, header, palette, transparency, name)


def _chunks(data: bytes, name: str):
    """(type, body, offset) of each chunk after the signature, CRC checked. A file that ends
    before IEND is truncated."""
    view = memoryview(data)
    position = len(PNG_SIGNATURE)
    for count in range(MAX_CHUNKS + 1):
        if count == MAX_CHUNKS:
            raise ImageError(f"the file holds more than {MAX_CHUNKS:,} chunks", file=name,
                             hint="the file is corrupt or hostile; re-export the image")
        if position + 8 > len(data):
            raise ImageError(f"the file is truncated: it ends at byte {len(data):,} before the IEND chunk",
                             file=name, hint="the download or copy was cut short; get the file again")
        length, kind = struct.unpack_from(">I4s", data, position)
        if not kind.isalpha() or not kind.isascii():
            raise ImageError(f"a chunk at byte {position:,} has the invalid type {short(kind)}", file=name,
                             hint="the file is corrupt; re-export it")
        if length > MAX_CHUNK:
            raise ImageError(f"chunk {kind.decode()} at byte {position:,} declares {length:,} bytes, more "
                             f"than PNG allows ({MAX_CHUNK:,})", file=name, hint="the file is corrupt")
        end = position + 8 + length
        if end + 4 > len(data):
            raise ImageError(
                f"the file is truncated: chunk {kind.decode()} at byte {position:,} declares {length:,} "
                f"bytes, {max(0, len(data) - position - 12):,} remain", file=name,
                hint="the download or copy was cut short; get the file again",
            )
        body = view[position + 8 : end]
        (stored,) = struct.unpack_from(">I", data, end)
        if zlib.crc32(body, zlib.crc32(kind)) != stored:
            raise ImageError(f"chunk {kind.decode()} at byte {position:,} fails its CRC check", file=name,
                             hint="the file is corrupt; get it again")
        yield kind, body, position
        position = end + 4


def _parse_header(body: memoryview, name: str, max_pixels: int) -> PngHeader:
    if len(body) != 13:
        raise ImageError(f"the IHDR chunk holds {len(body)} bytes, not 13", file=name, hint="the file is corrupt")
    width, height, depth, color_type, compression, filtering, interlace = struct.unpack(">IIBBBBB", body)
    if width > MAX_CHUNK or height > MAX_CHUNK:
        raise ImageError(f"the header declares {width}x{height} pixels, beyond what PNG allows", file=name,
                         hint="the file is corrupt")
    _check_size(width, height, name, max_pixels)
    if color_type not in CHANNELS:
        raise ImageError(f"unsupported color type {color_type}", file=name,
                         hint="PNG color types are 0 (gray), 2 (RGB), 3 (palette), 4 (gray + alpha), 6 (RGBA)")
    if depth not in DEPTHS[color_type]:
        allowed = ", ".join(map(str, DEPTHS[color_type]))
        raise ImageError(f"unsupported bit depth {depth} for color type {color_type} "
                         f"({COLOR_TYPES[color_type]})", file=name, hint=f"that color type allows {allowed}")
    if compression != 0 or filtering != 0:
        raise ImageError(f"unknown compression method {compression} or filter method {filtering}",
                         file=name, hint="PNG defines only method 0 for both; the file is corrupt")
    if interlace not in (0, 1):
        raise ImageError(f"unknown interlace method {interlace}", file=name,
                         hint="PNG defines 0 (none) and 1 (Adam7); the file is corrupt")
    return PngHeader(width, height, depth, color_type, interlaced=interlace == 1)


def _parse_palette(body: memoryview, name: str) -> np.ndarray:
    if len(body) % 3 or not 3 <= len(body) <= 768:
        raise ImageError(f"the palette (PLTE) holds {len(body)} bytes, not 1 to 256 RGB entries",
                         file=name, hint="the file is corrupt")
    return np.frombuffer(body, dtype=np.uint8).reshape(-1, 3)


class _Inflater:
    """The zlib stream of the IDAT chunks, inflated to exactly ``expected`` bytes: never more
    (extra data is ignored), and too little is an error."""

    def __init__(self, expected: int, name: str) -> None:
        self.expected = expected
        self.name = name
        self.parts: list[bytes] = []
        self.size = 0
        self.seen = False
        self.inflate = zlib.decompressobj()

    def feed(self, chunk: memoryview) -> None:
        self.seen = True
        room = self.expected - self.size
        if room <= 0 or self.inflate.eof:
            return  # all the declared pixels are in: the rest is ignored
        try:
            out = self.inflate.decompress(chunk, room)  # at most `room` bytes out, whatever comes in
        except zlib.error as error:
            raise ImageError(f"the image data is not a valid zlib stream: {error}", file=self.name,
                             hint="the file is corrupt; re-export it") from None
        self.parts.append(out)
        self.size += len(out)

    def finish(self) -> bytes:
        if not self.seen:
            raise ImageError("the file has no image data (no IDAT chunk)", file=self.name,
                             hint="the file is corrupt or truncated")
        if self.size < self.expected:
            raise ImageError(
                f"the image data inflates to {self.size:,} bytes, the header's size needs {self.expected:,}",
                file=self.name, hint="the file is truncated or corrupt; get it again",
            )
        return b"".join(self.parts)


def _decode_passes(stream: bytes, header: PngHeader, name: str) -> np.ndarray:
    """The samples of the whole image, (H, W, channels), as stored (uint8, or uint16 for 16-bit),
    from each pass's filtered rows."""
    dtype = np.uint16 if header.depth == 16 else np.uint8
    samples = np.zeros((header.height, header.width, header.channels), dtype=dtype)
    position = 0
    for x0, y0, dx, dy, width, height in header.passes():
        size = height * (1 + header.row_bytes(width))
        rows = np.frombuffer(stream, dtype=np.uint8, count=size, offset=position).reshape(height, -1)
        position += size
        unfiltered = unfilter(rows, max(1, header.channels * header.depth // 8), name)
        samples[y0::dy, x0::dx] = _unpack(unfiltered, width, header.channels, header.depth)
    return samples


def unfilter(rows: np.ndarray, bpp: int, name: str = "<png>") -> np.ndarray:
    """Undo the PNG row filters: ``rows`` is (H, 1 + row bytes) as stored, each row's first byte
    its filter type; returns the (H, row bytes) reconstructed bytes.

    With a = the byte ``bpp`` to the left, b = the byte above, c = above-left (0 outside the
    image), a row of type 0 stores x, 1 (Sub) x - a, 2 (Up) x - b, 3 (Average)
    x - floor((a + b) / 2), 4 (Paeth) x - paeth(a, b, c), all mod 256. Each pixel needs its left,
    upper and upper-left neighbours first, so the pixels are reconstructed one anti-diagonal at a
    time (all pixels with row + column = d, for each d), each diagonal in one numpy step: H + W
    steps instead of H x W.
    """
    height = rows.shape[0]
    kinds = rows[:, 0]
    bad = np.flatnonzero(kinds > 4)
    if bad.size:
        raise ImageError(f"row {int(bad[0])} has filter type {int(kinds[bad[0]])}; PNG defines 0 to 4",
                         file=name, hint="the file is corrupt")
    filtered = rows[:, 1:].reshape(height, -1, bpp).astype(np.int16)
    columns = filtered.shape[1]
    # Row 0 and column 0 of `out` are the zeros the filters assume outside the image.
    out = np.zeros((height + 1, columns + 1, bpp), dtype=np.int16)
    kind_of_row = kinds.astype(np.int16)[:, None]
    for d in range(height + columns - 1):
        r = np.arange(max(0, d - columns + 1), min(d, height - 1) + 1)
        c = d - r
        left, up, corner = out[r + 1, c], out[r, c + 1], out[r, c]
        kind = kind_of_row[r]
        predicted = np.where(kind == 1, left, 0)
        predicted = np.where(kind == 2, up, predicted)
        predicted = np.where(kind == 3, (left + up) >> 1, predicted)
        predicted = np.where(kind == 4, _paeth(left, up, corner), predicted)
        out[r + 1, c + 1] = (filtered[r, c] + predicted) & 0xFF
    return out[1:, 1:].reshape(height, -1).astype(np.uint8)


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Of a, b, c, the one closest to a + b - c (ties: a, then b)."""
    pa = np.abs(b - c)
    pb = np.abs(a - c)
    pc = np.abs(a + b - 2 * c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _unpack(rows: np.ndarray, width: int, channels: int, depth: int) -> np.ndarray:
    """Unfiltered row bytes -> samples (H, width, channels): bit-packed samples (depth 1, 2, 4:
    leftmost sample in the high bits) unpacked, 16-bit ones read big-endian."""
    height = rows.shape[0]
    if depth == 8:
        return rows.reshape(height, width, channels)
    if depth == 16:
        pairs = rows.reshape(height, width, channels, 2).astype(np.uint16)
        return (pairs[..., 0] << 8) | pairs[..., 1]
    per_byte = 8 // depth
    shifts = (8 - depth * np.arange(1, per_byte + 1)).astype(np.uint8)
    unpacked = (rows[:, :, None] >> shifts) & ((1 << depth) - 1)
    return unpacked.reshape(height, -1)[:, :width, None]


def _to_8bit(samples: np.ndarray, header: PngHeader, palette: np.ndarray | None,
             transparency: bytes | None, name: str) -> np.ndarray:
    """Stored samples -> what read_image returns: 8-bit values, palette looked up, transparency
    as an alpha channel, gray without a channel axis."""
    color_type, depth = header.color_type, header.depth
    if color_type == 3:
        return _apply_palette(samples[..., 0], palette, transparency, name)
    alpha = None
    if transparency is not None and color_type in (0, 2):
        alpha = _color_key_alpha(samples, transparency, color_type, depth, name)
    if depth == 16:
        pixels = (samples >> 8).astype(np.uint8)
    elif depth < 8:  # gray: 0..2^depth-1 stretched to 0..255 (x 255, 85 or 17: exact)
        pixels = (samples * (255 // ((1 << depth) - 1))).astype(np.uint8)
    else:
        pixels = samples
    if alpha is not None:
        pixels = np.concatenate([pixels, alpha[..., None]], axis=2)
    return pixels[..., 0] if pixels.shape[2] == 1 else pixels


def _apply_palette(indices: np.ndarray, palette: np.ndarray | None, transparency: bytes | None,
                   name: str) -> np.ndarray:
    if palette is None:
        raise ImageError("a palette image without a palette (PLTE chunk)", file=name, hint="the file is corrupt")
    largest = int(indices.max())
    if largest >= len(palette):
        raise ImageError(f"a pixel uses palette entry {largest}; the palette has {len(palette)} entries",
                         file=name, hint="the file is corrupt")
    if transparency is None:
        return palette[indices]
    if len(transparency) > len(palette):
        raise ImageError(f"tRNS holds {len(transparency)} alphas for a palette of {len(palette)} entries",
                         file=name, hint="the file is corrupt")
    alphas = np.full(len(palette), 255, dtype=np.uint8)  # entries past the tRNS list are opaque
    alphas[: len(transparency)] = np.frombuffer(transparency, dtype=np.uint8)
    return np.concatenate([palette, alphas[:, None]], axis=1)[indices]


def _color_key_alpha(samples: np.ndarray, transparency: bytes, color_type: int, depth: int,
                     name: str) -> np.ndarray:
    """Alpha 0 where a pixel equals the tRNS color key (compared at the stored depth), else 255."""
    count = 1 if color_type == 0 else 3
    if len(transparency) != 2 * count:
        raise ImageError(f"tRNS holds {len(transparency)} bytes; a {COLOR_TYPES[color_type]} image needs "
                         f"{2 * count}", file=name, hint="the file is corrupt")
    key = np.array(struct.unpack(f">{count}H", transparency)) & ((1 << depth) - 1)
    transparent = np.all(samples == key.astype(samples.dtype), axis=2)
    return np.where(transparent, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# Converting an image to a model's raw example
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """How a model's raw example holds an image."""

    height: int
    width: int
    channels: int  # 1 or 3
    order: Literal["hw", "hwc", "chw", "flat"]


def image_layout(raw_shape: Sequence[int], source: str | None = None) -> Layout:
    """The image layout of a raw example shape: [H, W] gray; [H, W, C] or [C, H, W] with C 1 or
    3 (channels last preferred when both fit); [N] with N = S x S: a flattened S x S gray image."""
    shape = [int(n) for n in raw_shape]
    if len(shape) == 2:
        return Layout(shape[0], shape[1], 1, "hw")
    if len(shape) == 3 and shape[2] in (1, 3):
        return Layout(shape[0], shape[1], shape[2], "hwc")
    if len(shape) == 3 and shape[0] in (1, 3):
        return Layout(shape[1], shape[2], shape[0], "chw")
    if len(shape) == 1 and shape[0] > 0 and math.isqrt(shape[0]) ** 2 == shape[0]:
        side = math.isqrt(shape[0])
        return Layout(side, side, 1, "flat")
    raise ImageError(
        f"the model's raw examples have shape {shape}, which is not an image layout; received an image",
        file=source, path="preprocess.raw_shape",
        hint="images feed [H, W], [H, W, C] or [C, H, W] with C 1 or 3, or [S*S]; give a .npy array "
             f"of shape {shape} instead",
    )


def to_model_input(
    image: np.ndarray,
    raw_shape: Sequence[int],
    raw_dtype: str,
    *,
    invert: bool | None = False,
    background: Literal["white", "black"] = "white",
    float_max: float = 1.0,
    source: str | None = None,
) -> np.ndarray:
    """One raw example for a model whose preprocessing record says ``raw_shape`` and
    ``raw_dtype``, from ``image`` as :func:`read_image` returns it. The steps, in order
    (composite, grayscale, invert, resize, cast), are in the module's docstring. ``source`` is
    the file named in errors."""
    layout = image_layout(raw_shape, source)
    pixels = _as_pixels(image, source)
    pixels = _composite(pixels, background, source)
    pixels = _match_channels(pixels, layout.channels)
    if invert is None:
        invert = light_background(pixels)
    if invert:
        pixels = 255 - pixels
    pixels = resize(pixels, layout.height, layout.width)
    return _as_raw(pixels, layout, raw_dtype, float_max, source)


def _as_pixels(image: np.ndarray, source: str | None) -> np.ndarray:
    """(H, W, C) float32 0..255 from an (H, W) or (H, W, C) uint8 image, C 1 to 4."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ImageError(f"image pixels must be uint8; received {image.dtype}", file=source,
                         hint="read the image with graphnet.images.read_image")
    shape = list(image.shape)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or not 1 <= image.shape[2] <= 4 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ImageError(f"an image is (H, W) or (H, W, C) with C 1 to 4; received shape {shape}", file=source)
    return image.astype(np.float32)


def _composite(pixels: np.ndarray, background: str, source: str | None) -> np.ndarray:
    """Drop the alpha channel (gray + alpha, RGBA) by compositing over ``background``:
    v = alpha * color + (1 - alpha) * background."""
    if background not in ("white", "black"):
        raise ImageError(f"background is 'white' or 'black'; received {short(background)}", file=source)
    if pixels.shape[2] not in (2, 4):
        return pixels
    color, alpha = pixels[:, :, :-1], pixels[:, :, -1:] / 255
    fill = 255.0 if background == "white" else 0.0
    return color * alpha + fill * (1 - alpha)


def _match_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """Gray (1) or RGB (3) as the model wants: BT.601 luma of RGB, or gray repeated."""
    if pixels.shape[2] == channels:
        return pixels
    if channels == 1:
        return (pixels @ LUMA)[:, :, None]
    return np.repeat(pixels, 3, axis=2)


def light_background(pixels: np.ndarray) -> bool:
    """Whether the image's border (outermost rows and columns, all channels) averages above
    127.5: a light background, as on paper, unlike MNIST's black."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return float(border.mean()) > 127.5


def resize(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, C) -> (height, width, C): area averaging on an axis that shrinks, bilinear
    (half-pixel centres) on one that grows. Separable: one weight matrix per axis."""
    rows = resize_weights(pixels.shape[0], height)
    columns = resize_weights(pixels.shape[1], width)
    out = np.einsum("ih,hwc->iwc", rows, pixels)
    return np.einsum("jw,iwc->ijc", columns, out)


def resize_weights(size_in: int, size_out: int) -> np.ndarray:
    """The (size_out, size_in) matrix resizing one axis; each row sums to 1.

    Shrinking: output pixel i covers [i s, (i + 1) s) of the input (s = size_in / size_out) and
    averages it, each input pixel weighted by how much of it lies inside. Growing: output pixel i
    samples the input at x = (i + 0.5) / scale - 0.5 (clamped to the ends) and interpolates
    between the two pixels around x."""
    if size_out == size_in:
        return np.eye(size_in, dtype=np.float32)
    if size_out < size_in:
        step = size_in / size_out
        starts = np.arange(size_out)[:, None] * step
        ends = starts + step
        left = np.arange(size_in)[None, :]
        overlap = np.clip(np.minimum(left + 1, ends) - np.maximum(left, starts), 0, None)
        return (overlap / step).astype(np.float32)
    x = np.clip((np.arange(size_out) + 0.5) * size_in / size_out - 0.5, 0, size_in - 1)
    below = np.floor(x).astype(int)
    above = np.minimum(below + 1, size_in - 1)
    fraction = x - below
    weights = np.zeros((size_out, size_in))
    np.add.at(weights, (np.arange(size_out), below), 1 - fraction)
    np.add.at(weights, (np.arange(size_out), above), fraction)
    return weights.astype(np.float32)


def _as_raw(pixels: np.ndarray, layout: Layout, raw_dtype: str, float_max: float,
            source: str | None) -> np.ndarray:
    """(height, width, C) 0..255 -> the raw example: laid out as the model's shape, in its dtype."""
    if raw_dtype == "uint8":
        values = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    elif raw_dtype in ("float32", "float64"):
        if not (math.isfinite(float_max) and float_max > 0):
            raise ImageError(f"float_max must be a positive number; received {short(float_max)}", file=source)
        values = (pixels.astype(np.float64) * (float_max / 255)).astype(raw_dtype)
    else:
        raise ImageError(f"raw examples of dtype {short(raw_dtype)} cannot be made from an image",
                         file=source, path="preprocess.raw_dtype", hint="images give uint8, float32 or float64")
    if layout.order == "hw" or layout.order == "flat":
        values = values[:, :, 0]
        return values.reshape(-1) if layout.order == "flat" else values
    if layout.order == "chw":
        return np.ascontiguousarray(values.transpose(2, 0, 1))
    return values

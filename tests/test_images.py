"""graphnet.images: the PNG decoder against PNGs encoded here (every color type, bit depth, row
filter, interlacing) and against Pillow when it is installed; the conversion to a model's raw
example against hand computation (and Pillow's resampling); and the table of malformed files.

The encoder below is written from the PNG specification, independently of the decoder: scalar
Python loops with the Paeth predictor in the specification's own form."""

from __future__ import annotations

import io
import struct
import sys
import tracemalloc
import zlib

import numpy as np
import pytest

from graphnet.errors import DataError, GraphnetError
from graphnet.images import ImageError, decode_png, image_layout, read_image, resize, resize_weights, to_model_input

# ----------------------------------------------------------------------------------------------
# A small PNG encoder for the tests
# ----------------------------------------------------------------------------------------------

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
PASSES = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def chunk(kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    if crc is None:
        crc = zlib.crc32(kind + body)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def ihdr(width, height, depth, color_type, interlace=0, compression=0, filtering=0) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, compression,
                                      filtering, interlace))


def pack_row(samples: list[int], depth: int) -> bytes:
    """One row of samples at ``depth`` bits, most significant first, the last byte padded."""
    if depth == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    if depth == 8:
        return bytes(samples)
    bits = "".join(format(s, f"0{depth}b") for s in samples)
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8))


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    if pb <= pc:
        return b
    return c


def filter_row(kind: int, row: bytes, prior: bytes, bpp: int) -> bytes:
    out = bytearray([kind])
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prior[i]
        c = prior[i - bpp] if i >= bpp else 0
        predicted = [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]
        out.append((x - predicted) % 256)
    return bytes(out)


def image_data(samples: np.ndarray, depth: int, filters, interlace: bool) -> bytes:
    """The bytes before compression: each (sub-)image's rows, filtered, each with its type byte."""
    height, width, channels = samples.shape
    bpp = max(1, channels * depth // 8)
    passes = PASSES if interlace else [(0, 0, 1, 1)]
    out = b""
    row_index = 0
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.size == 0:
            continue  # an empty pass stores nothing
        prior = bytes(len(pack_row([0] * sub.shape[1] * channels, depth)))
        for row in sub:
            packed = pack_row([int(v) for v in row.reshape(-1)], depth)
            out += filter_row(filters[row_index % len(filters)], packed, prior, bpp)
            prior = packed
            row_index += 1
    return out


def encode_png(samples: np.ndarray, color_type: int, depth: int, *, filters=(0,), interlace=False,
               palette: np.ndarray | None = None, trns: bytes | None = None, idat_pieces: int = 1) -> bytes:
    """A PNG of ``samples`` (H, W, channels) stored as they are, rows filtered with ``filters``
    (cycled over the rows), the zlib stream split over ``idat_pieces`` IDAT chunks."""
    height, width, _ = samples.shape
    stream = zlib.compress(image_data(samples, depth, list(filters), interlace))
    cut = [len(stream) * i // idat_pieces for i in range(idat_pieces + 1)]
    body = ihdr(width, height, depth, color_type, interlace=int(interlace))
    if palette is not None:
        body += chunk(b"PLTE", palette.astype(np.uint8).tobytes())
    if trns is not None:
        body += chunk(b"tRNS", trns)
    body += chunk(b"tEXt", b"Comment\x00ancillary chunks are skipped")
    body += b"".join(chunk(b"IDAT", stream[cut[i] : cut[i + 1]]) for i in range(idat_pieces))
    return SIGNATURE + body + chunk(b"IEND", b"")


def random_samples(height, width, color_type, depth, seed=0) -> tuple[np.ndarray, np.ndarray | None]:
    """Samples with smooth parts (where Average and Paeth predict well) and noise, and for a
    palette image its palette."""
    rng = np.random.default_rng(seed)
    channels = CHANNELS[color_type]
    top = (1 << depth) - 1
    palette = None
    if color_type == 3:
        entries = min(top + 1, 200)
        palette = rng.integers(0, 256, (entries, 3))
        top = entries - 1
    ramp = (np.add.outer(np.arange(height), np.arange(width))[:, :, None] * (top // 7 + 1)) % (top + 1)
    noise = rng.integers(0, top + 1, (height, width, channels))
    samples = np.where(rng.random((height, width, channels)) < 0.3, noise, ramp)
    dtype = np.uint16 if depth == 16 else np.uint8
    return samples.astype(dtype), palette


def expected_pixels(samples: np.ndarray, color_type: int, depth: int, palette) -> np.ndarray:
    """What read_image should return, computed from the samples by the rules in its docstring."""
    if color_type == 3:
        return palette[samples[:, :, 0]].astype(np.uint8)
    values = samples.astype(np.int64)
    if depth == 16:
        values = values // 256
    elif depth < 8:
        values = values * 255 // ((1 << depth) - 1)
    values = values.astype(np.uint8)
    return values[:, :, 0] if values.shape[2] == 1 else values


COMBOS = [(ct, d) for ct, depths in DEPTHS.items() for d in depths]


def combo_id(combo):
    return f"type{combo[0]}-{combo[1]}bit"


# ----------------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
@pytest.mark.parametrize("filters", [(0,), (1,), (2,), (3,), (4,), (4, 3, 0, 2, 1)],
                         ids=["none", "sub", "up", "average", "paeth", "mixed"])
def test_every_color_type_depth_and_filter_decodes(combo, filters, tmp_path):
    color_type, depth = combo
    samples, palette = random_samples(9, 13, color_type, depth, seed=depth)
    data = encode_png(samples, color_type, depth, filters=filters, palette=palette, idat_pieces=3)
    path = tmp_path / "image.png"
    path.write_bytes(data)
    pixels = read_image(path)
    expected = expected_pixels(samples, color_type, depth, palette)
    assert pixels.dtype == np.uint8
    assert pixels.shape == expected.shape
    assert np.array_equal(pixels, expected)


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
@pytest.mark.parametrize("size", [(1, 1), (3, 2), (9, 13), (17, 10)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_interlaced_images_decode_like_plain_ones(combo, size):
    """Adam7, including sizes where some passes are empty (1x1: only the first pass)."""
    color_type, depth = combo
    samples, palette = random_samples(*size, color_type, depth, seed=1)
    plain = decode_png(encode_png(samples, color_type, depth, filters=(4, 1, 3), palette=palette))
    interlaced = decode_png(encode_png(samples, color_type, depth, filters=(2, 4, 0, 3), interlace=True,
                                       palette=palette))
    assert np.array_equal(plain, expected_pixels(samples, color_type, depth, palette))
    assert np.array_equal(interlaced, plain)


def test_wide_and_tall_images_with_every_filter():
    """Rows much longer than the image is tall and the reverse (the reconstruction goes one
    anti-diagonal at a time: both shapes must cover every pixel)."""
    for shape in [(2, 300, 3), (300, 2, 3), (1, 50, 4), (50, 1, 1)]:
        color_type = {1: 0, 3: 2, 4: 6}[shape[2]]
        samples = np.random.default_rng(5).integers(0, 256, shape).astype(np.uint8)
        decoded = decode_png(encode_png(samples, color_type, 8, filters=(0, 1, 2, 3, 4)))
        assert np.array_equal(decoded.reshape(shape), samples)


def test_transparency_chunks():
    rng = np.random.default_rng(2)
    # palette: tRNS gives the first entries' alphas, the rest are opaque
    indices = rng.integers(0, 4, (5, 6, 1)).astype(np.uint8)
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]])
    pixels = decode_png(encode_png(indices, 3, 2, palette=palette, trns=bytes([0, 128])))
    alphas = np.array([0, 128, 255, 255])[indices[:, :, 0]]
    assert pixels.shape == (5, 6, 4)
    assert np.array_equal(pixels[:, :, :3], palette[indices[:, :, 0]])
    assert np.array_equal(pixels[:, :, 3], alphas)
    # gray color key (compared at the stored depth: 4-bit value 5): alpha 0 there, 255 elsewhere
    gray = rng.integers(0, 16, (4, 7, 1)).astype(np.uint8)
    gray[0, 0] = 5
    pixels = decode_png(encode_png(gray, 0, 4, trns=struct.pack(">H", 5)))
    assert pixels.shape == (4, 7, 2)
    assert np.array_equal(pixels[:, :, 0], gray[:, :, 0] * 17)
    assert np.array_equal(pixels[:, :, 1], np.where(gray[:, :, 0] == 5, 0, 255))
    # RGB color key, 16-bit
    rgb = rng.integers(0, 65536, (3, 4, 3)).astype(np.uint16)
    rgb[1, 2] = (1000, 2000, 3000)
    pixels = decode_png(encode_png(rgb, 2, 16, trns=struct.pack(">3H", 1000, 2000, 3000)))
    assert pixels[1, 2, 3] == 0 and np.count_nonzero(pixels[:, :, 3] == 0) == 1
    assert np.array_equal(pixels[:, :, :3], rgb >> 8)


def test_a_zlib_bomb_inflates_no_further_than_the_header_declares():
    """10x10 gray declares 110 bytes; the stream holds 64 MB of zeros after them."""
    stream = zlib.compress(bytes(110) + bytes(64 << 20), 9)
    data = SIGNATURE + ihdr(10, 10, 8, 0) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")
    tracemalloc.start()
    try:
        pixels = decode_png(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert pixels.shape == (10, 10) and not pixels.any()
    assert peak < 4 << 20, f"decoding used {peak:,} bytes"


def test_huge_declared_dimensions_are_refused_before_allocating():
    data = SIGNATURE + ihdr(100_000, 100_000, 16, 6) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match=r"100000x100000 pixels .*refused") as caught:
            decode_png(data, name="huge.png")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert "huge.png" in str(caught.value)
    # the limit is a parameter
    small = encode_png(np.zeros((10, 10, 1), np.uint8), 0, 8)
    with pytest.raises(ImageError, match="over 99 pixels"):
        decode_png(small, max_pixels=99)
    assert decode_png(small, max_pixels=100).shape == (10, 10)


# ----------------------------------------------------------------------------------------------
# Against Pillow (optional: an independent decoder)
# ----------------------------------------------------------------------------------------------


def pillow_pixels(data: bytes, gray_alpha: bool = False) -> np.ndarray:
    """Pillow's decoding of a PNG, put in read_image's form with Pillow's own conversions.
    Pillow opens 16-bit gray + alpha as RGBA: ``gray_alpha`` takes it back to gray + alpha."""
    Image = pytest.importorskip("PIL.Image")
    image = Image.open(io.BytesIO(data))
    image.load()
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode == "1":
        image = image.convert("L")
    array = np.array(image)
    if image.mode.startswith("I"):  # 16-bit gray: Pillow keeps the full value
        array = (array.astype(np.int64) >> 8).astype(np.uint8)
    if gray_alpha and image.mode == "RGBA":
        assert np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2])
        array = array[..., [0, 3]]
    return array


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
@pytest.mark.parametrize("interlace", [False, True], ids=["plain", "adam7"])
def test_our_pngs_decode_as_pillow_decodes_them(combo, interlace):
    color_type, depth = combo
    samples, palette = random_samples(11, 14, color_type, depth, seed=3)
    data = encode_png(samples, color_type, depth, filters=(0, 1, 2, 3, 4), interlace=interlace, palette=palette)
    assert np.array_equal(decode_png(data), pillow_pixels(data, gray_alpha=color_type == 4))


@pytest.mark.parametrize("mode", ["1", "L", "LA", "RGB", "RGBA", "P", "I;16"])
def test_pngs_written_by_pillow_decode_as_pillow_reads_them(mode):
    """Pillow's encoder picks the filters itself (adaptive, per row)."""
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(4)
    ramp = np.add.outer(np.arange(40), np.arange(57)) * 3
    if mode == "I;16":
        image = Image.fromarray((ramp * 97 + rng.integers(0, 200, ramp.shape)).astype(np.uint16))
    elif mode in ("1", "L", "P"):
        gray = ((ramp + rng.integers(0, 9, ramp.shape)) % 256).astype(np.uint8)
        image = Image.fromarray(gray).convert(mode)
    else:
        channels = len(mode)
        array = (ramp[:, :, None] * (np.arange(channels) + 1) + rng.integers(0, 9, (40, 57, channels))) % 256
        image = Image.fromarray(array.astype(np.uint8), mode)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    data = buffer.getvalue()
    assert np.array_equal(decode_png(data), pillow_pixels(data))


def test_jpeg_is_read_through_pillow(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    gray = np.add.outer(np.arange(32), np.arange(48)).astype(np.uint8) * 4
    Image.fromarray(gray).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(np.stack([gray] * 3, axis=2)).save(tmp_path / "b.jpeg", quality=95)
    a, b = read_image(tmp_path / "a.jpg"), read_image(tmp_path / "b.jpeg")
    assert a.shape == (32, 48) and a.dtype == np.uint8
    assert b.shape == (32, 48, 3)
    assert np.abs(a.astype(int) - gray).max() <= 8  # JPEG is lossy
    assert np.abs(b[:, :, 1].astype(int) - gray).max() <= 8


def test_jpeg_exif_orientation_is_applied(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    array = np.zeros((20, 40), np.uint8)
    array[:, :20] = 255  # left half white
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    image.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    pixels = read_image(tmp_path / "rotated.jpg")
    assert pixels.shape == (40, 20)  # displayed upright: taller than wide
    assert pixels[:20].mean() > 200 and pixels[20:].mean() < 50  # the white half is now on top


# ----------------------------------------------------------------------------------------------
# Malformed files: one ImageError each, naming the file
# ----------------------------------------------------------------------------------------------


def good_png() -> bytes:
    samples, _ = random_samples(6, 5, 2, 8)
    return encode_png(samples, 2, 8, filters=(4,))


def replace_chunk(data: bytes, kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    """``data`` with the first chunk of type ``kind`` replaced (re-signed unless crc is given)."""
    position = 8
    while True:
        length, found = struct.unpack_from(">I4s", data, position)
        end = position + 12 + length
        if found == kind:
            return data[:position] + chunk(kind, body, crc) + data[end:]
        position = end


def without_chunk(data: bytes, kind: bytes) -> bytes:
    position = 8
    while True:
        length, found = struct.unpack_from(">I4s", data, position)
        end = position + 12 + length
        if found == kind:
            return data[:position] + data[end:]
        position = end


def idat_offset(data: bytes) -> int:
    return data.index(b"IDAT") - 4


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x40]) + data[at + 1 :]


def gray(height=4, width=4, depth=8, **kwargs) -> bytes:
    return encode_png(np.zeros((height, width, 1), np.uint16 if depth == 16 else np.uint8), 0, depth, **kwargs)


def header_only(*ihdr_args) -> bytes:
    return SIGNATURE + ihdr(*ihdr_args) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")


MALFORMED = {
    "empty": (lambda: b"", "empty"),
    "signature only": (lambda: SIGNATURE, "truncated.*before the IEND"),
    "cut inside IHDR": (lambda: good_png()[:20], "truncated.*IHDR"),
    "cut inside IDAT": (lambda: good_png()[: idat_offset(good_png()) + 15], "truncated.*IDAT"),
    "no IEND": (lambda: good_png()[:-12], "truncated.*before the IEND"),
    "bad CRC in IDAT": (lambda: flip(good_png(), idat_offset(good_png()) + 10), "IDAT.*fails its CRC"),
    "bad CRC in IHDR": (lambda: flip(good_png(), 16), "IHDR.*fails its CRC"),
    "bad zlib stream": (lambda: replace_chunk(good_png(), b"IDAT", b"\x78\x9c not a deflate stream"),
                        "not a valid zlib stream"),
    "zlib stream cut short": (lambda: replace_chunk(good_png(), b"IDAT", zlib.compress(bytes(200))[:-30]),
                              "inflates to .* bytes, the header's size needs 96"),
    "too little pixel data": (lambda: replace_chunk(good_png(), b"IDAT", zlib.compress(bytes(50))),
                              "inflates to 50 bytes, the header's size needs 96"),
    "no IDAT": (lambda: without_chunk(good_png(), b"IDAT"), "no image data"),
    "IDAT before IHDR": (lambda: SIGNATURE + chunk(b"IDAT", b"") + good_png()[8:], "first chunk is IDAT"),
    "two IHDR": (lambda: SIGNATURE + ihdr(5, 6, 8, 2) + good_png()[8:], "second IHDR"),
    "IHDR of 12 bytes": (lambda: replace_chunk(good_png(), b"IHDR", bytes(12)), "IHDR chunk holds 12 bytes"),
    "zero width": (lambda: header_only(0, 4, 8, 0), "0x4 pixels: it holds no pixel"),
    "zero height": (lambda: header_only(4, 0, 8, 0), "4x0 pixels: it holds no pixel"),
    "width past 2^31": (lambda: header_only(1 << 31, 1, 8, 0), "beyond what PNG allows"),
    "color type 1": (lambda: header_only(4, 4, 8, 1), "unsupported color type 1"),
    "color type 7": (lambda: header_only(4, 4, 8, 7), "unsupported color type 7"),
    "RGB at 4 bits": (lambda: header_only(4, 4, 4, 2), "bit depth 4 for color type 2"),
    "gray at 3 bits": (lambda: header_only(4, 4, 3, 0), "bit depth 3 for color type 0"),
    "palette at 16 bits": (lambda: header_only(4, 4, 16, 3), "bit depth 16 for color type 3"),
    "compression method 1": (lambda: header_only(4, 4, 8, 0, 0, 1), "compression method 1"),
    "filter method 1": (lambda: header_only(4, 4, 8, 0, 0, 0, 1), "filter method 1"),
    "interlace method 2": (lambda: header_only(4, 4, 8, 0, 2), "interlace method 2"),
    "row filter type 5": (lambda: replace_chunk(gray(), b"IDAT", zlib.compress(bytes(5) + b"\x05" + bytes(14))),
                          "row 1 has filter type 5"),
    "palette image without PLTE": (lambda: encode_png(np.zeros((2, 2, 1), np.uint8), 3, 8), "without a palette"),
    "palette index out of range": (lambda: encode_png(np.full((2, 2, 1), 3, np.uint8), 3, 8,
                                                      palette=np.zeros((3, 3))), "entry 3; the palette has 3"),
    "PLTE of 4 bytes": (lambda: encode_png(np.zeros((2, 2, 1), np.uint8), 3, 8, palette=np.zeros((2, 2))),
                        "palette .* holds 4 bytes"),
    "tRNS longer than the palette": (lambda: encode_png(np.zeros((2, 2, 1), np.uint8), 3, 8,
                                                        palette=np.zeros((2, 3)), trns=bytes(3)),
                                     "3 alphas for a palette of 2"),
    "gray tRNS of 6 bytes": (lambda: gray(trns=bytes(6)), "tRNS holds 6 bytes; a grayscale image needs 2"),
    "unknown critical chunk": (lambda: good_png()[:33] + chunk(b"ZZZZ", b"x") + good_png()[33:],
                               "unsupported critical chunk ZZZZ"),
    "chunk type not letters": (lambda: good_png()[:33] + chunk(b"a1b2", b"") + good_png()[33:],
                               "invalid type"),
    "chunk length past 2^31": (lambda: good_png()[:33] + struct.pack(">I4s", 1 << 31, b"tEXt") + bytes(16),
                               "more than PNG allows"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_png_is_one_image_error_naming_the_file(case, tmp_path):
    make, message = MALFORMED[case]
    path = tmp_path / "broken.png"
    path.write_bytes(make())
    with pytest.raises(ImageError, match=message) as caught:
        read_image(path)
    error = caught.value
    assert isinstance(error, DataError) and isinstance(error, GraphnetError)
    assert str(error).startswith(f"{path}: ")
    assert error.hint  # says what to do


def test_a_png_with_every_byte_flipped_or_cut_is_decoded_or_one_image_error():
    """A sweep over a small file: each byte flipped, each length cut. Nothing but ImageError
    escapes; a flip in an ancillary chunk's body decodes (and its CRC still catches it)."""
    data = encode_png(random_samples(5, 4, 3, 4)[0], 3, 4, filters=(4, 3), palette=random_samples(5, 4, 3, 4)[1],
                      trns=bytes([7]))
    for at in range(len(data)):
        for mutated in (flip(data, at), data[:at]):
            try:
                decode_png(mutated)
            except ImageError:
                pass


def test_a_file_of_endless_chunks_is_refused(monkeypatch):
    monkeypatch.setattr("graphnet.images.MAX_CHUNKS", 50)
    data = good_png()
    many = data[:33] + chunk(b"tEXt", b"") * 60 + data[33:]
    with pytest.raises(ImageError, match="more than 50 chunks"):
        decode_png(many)
    assert decode_png(data[:33] + chunk(b"tEXt", b"") * 40 + data[33:]).shape == (6, 5, 3)


def test_missing_file_folder_and_unknown_format(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="is a folder"):
        read_image(tmp_path)
    text = tmp_path / "notes.png"
    text.write_text("hello, not an image")
    pytest.importorskip("PIL")
    with pytest.raises(ImageError, match="not an image format") as caught:
        read_image(text)
    assert str(text) in str(caught.value)


def test_corrupt_jpeg_through_pillow_is_an_image_error(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(buffer, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[:200])
    with pytest.raises(ImageError, match="JPEG file is corrupt or truncated") as caught:
        read_image(path)
    assert str(path) in str(caught.value)


def test_without_pillow_png_still_reads_and_jpeg_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)  # `import PIL` now raises ImportError
    png = tmp_path / "a.png"
    png.write_bytes(gray(3, 3))
    assert read_image(png).shape == (3, 3)
    jpeg = tmp_path / "a.jpg"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    with pytest.raises(ImageError, match="reading JPEG images needs Pillow") as caught:
        read_image(jpeg)
    assert "pip install 'graphnet[image]'" in str(caught.value)
    other = tmp_path / "a.bin"
    other.write_bytes(b"\x00\x01garbage")
    with pytest.raises(ImageError, match="not a PNG file.*pillow"):
        read_image(other)


# ----------------------------------------------------------------------------------------------
# Converting to a model's raw example
# ----------------------------------------------------------------------------------------------


def test_rgb_to_gray_uses_bt601_luma():
    image = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [10, 20, 30]]], np.uint8)
    out = to_model_input(image, [2, 2], "uint8")
    # 0.299 * 255 = 76.245, 0.587 * 255 = 149.685, 0.114 * 255 = 29.07, 2.99 + 11.74 + 3.42 = 18.15
    assert out.dtype == np.uint8
    assert out.tolist() == [[76, 150], [29, 18]]
    floats = to_model_input(image, [2, 2], "float32")
    assert floats.dtype == np.float32
    assert np.allclose(floats, np.array([[76.245, 149.685], [29.07, 18.15]]) / 255, atol=1e-6)
    assert np.allclose(to_model_input(image, [2, 2], "float64", float_max=255.0),
                       [[76.245, 149.685], [29.07, 18.15]], atol=1e-4)


def test_alpha_is_composited_on_the_chosen_background():
    image = np.array([[[100, 128], [100, 255]], [[100, 0], [0, 51]]], np.uint8)  # gray + alpha
    on_white = to_model_input(image, [2, 2], "float64", float_max=255.0)
    on_black = to_model_input(image, [2, 2], "float64", float_max=255.0, background="black")
    # 100 * 128/255 + 255 * 127/255; 100; 255 (transparent); 0 * 51/255 + 255 * 204/255
    assert np.allclose(on_white, [[100 * 128 / 255 + 127, 100], [255, 204]], atol=1e-4)
    assert np.allclose(on_black, [[100 * 128 / 255, 100], [0, 0]], atol=1e-4)
    rgba = np.zeros((1, 1, 4), np.uint8)
    rgba[0, 0] = (200, 100, 0, 128)
    luma = 0.299 * 200 + 0.587 * 100
    assert np.allclose(to_model_input(rgba, [1, 1], "float64", float_max=255.0),
                       luma * 128 / 255 + 255 * 127 / 255, atol=1e-4)
    with pytest.raises(ImageError, match="background is 'white' or 'black'"):
        to_model_input(rgba, [1, 1], "uint8", background="grey")


def test_invert_explicit_and_by_the_border():
    dark_on_light = np.full((5, 5), 240, np.uint8)
    dark_on_light[1:4, 2] = 10  # a dark stroke
    light_on_dark = 255 - dark_on_light
    assert np.array_equal(to_model_input(dark_on_light, [5, 5], "uint8"), dark_on_light)  # default: as is
    assert np.array_equal(to_model_input(dark_on_light, [5, 5], "uint8", invert=True), light_on_dark)
    assert np.array_equal(to_model_input(dark_on_light, [5, 5], "uint8", invert=None), light_on_dark)
    assert np.array_equal(to_model_input(light_on_dark, [5, 5], "uint8", invert=None), light_on_dark)
    # only the border decides: a light frame around a large dark middle (whole mean 98) is light
    framed = np.full((7, 7), 200, np.uint8)
    framed[1:6, 1:6] = 0
    assert np.array_equal(to_model_input(framed, [7, 7], "uint8", invert=None), 255 - framed)
    assert np.array_equal(to_model_input(255 - framed, [7, 7], "uint8", invert=None), 255 - framed)
    # a transparent background composited on white counts as light
    strokes = np.zeros((5, 5, 2), np.uint8)
    strokes[1:4, 2] = (0, 255)  # opaque black strokes, the rest transparent
    out = to_model_input(strokes, [5, 5], "uint8", invert=None)
    assert out[2, 2] == 255 and out[0, 0] == 0


def test_area_averaging_when_shrinking():
    image = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    out = to_model_input(image, [2, 2], "float64", float_max=255.0)
    blocks = image.reshape(2, 2, 2, 2).mean(axis=(1, 3))
    assert np.allclose(out, blocks, atol=1e-4)
    # a fractional step: 3 -> 2 covers [0, 1.5) and [1.5, 3)
    weights = resize_weights(3, 2)
    assert np.allclose(weights, [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])
    row = np.array([[0, 30, 60]], np.uint8)
    assert np.allclose(to_model_input(row, [1, 2], "float64", float_max=255.0), [[10, 50]], atol=1e-4)


def test_bilinear_when_growing():
    # 2 -> 4 samples at x = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1)
    assert np.allclose(resize_weights(2, 4), [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    row = np.array([[0, 100]], np.uint8)
    assert np.allclose(to_model_input(row, [1, 4], "float64", float_max=255.0), [[0, 25, 75, 100]], atol=1e-4)
    # one axis grows while the other shrinks
    image = np.array([[0, 100], [200, 100]], np.uint8)
    out = to_model_input(image, [1, 4], "float64", float_max=255.0)
    assert np.allclose(out, [[100, 100, 100, 100]], atol=1e-4)
    for size_in, size_out in [(7, 3), (3, 7), (28, 28), (1, 5), (5, 1)]:
        assert np.allclose(resize_weights(size_in, size_out).sum(axis=1), 1)


@pytest.mark.parametrize("size_in,size_out", [(7, 3), (210, 28), (37, 28), (100, 28), (29, 28), (5, 1)])
def test_area_averaging_equals_the_mean_of_a_supersampled_axis(size_in, size_out):
    """Repeat each input pixel size_out times: the axis then has size_in * size_out samples and
    output pixel i is exactly the mean of the i-th block of size_in of them."""
    rng = np.random.default_rng(7)
    image = rng.random((size_in, 3, 2)).astype(np.float32) * 255
    reference = np.repeat(image.astype(np.float64), size_out, axis=0).reshape(size_out, size_in, 3, 2).mean(axis=1)
    assert np.allclose(resize(image, size_out, 3), reference, atol=1e-3)
    assert np.allclose(resize(image.transpose(1, 0, 2), 3, size_out), reference.transpose(1, 0, 2), atol=1e-3)


@pytest.mark.parametrize("size_in,size_out", [((280, 210), (28, 30)), ((56, 84), (28, 28)), ((8, 6), (28, 28)),
                                              ((100, 10), (25, 35))])
def test_resize_matches_pillow_box_and_bilinear(size_in, size_out):
    """Pillow's BOX filter is area averaging when the ratio is a whole number (with a fractional
    one it takes or leaves whole pixels); its BILINEAR, when enlarging, interpolates between pixel
    centres with the edges clamped. Each axis is compared on its own."""
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(6)
    image = rng.random(size_in).astype(np.float32) * 255
    for axis in (0, 1):
        target = list(size_in)
        target[axis] = size_out[axis]
        ours = resize(image[:, :, None], *target)[:, :, 0]
        method = Image.BOX if target[axis] < size_in[axis] else Image.BILINEAR
        theirs = np.array(Image.fromarray(image, "F").resize((target[1], target[0]), method))
        assert np.allclose(ours, theirs, atol=1e-3), f"axis {axis}"


def test_layouts_of_raw_shapes():
    image = np.zeros((6, 6, 3), np.uint8)
    image[..., 0] = 255
    assert to_model_input(image, [3, 3], "uint8").shape == (3, 3)
    assert to_model_input(image, [3, 3, 1], "uint8").shape == (3, 3, 1)
    assert to_model_input(image, [1, 3, 3], "uint8").shape == (1, 3, 3)
    hwc = to_model_input(image, [3, 4, 3], "uint8")
    chw = to_model_input(image, [3, 3, 4], "uint8")
    assert hwc.shape == (3, 4, 3) and np.all(hwc[..., 0] == 255) and np.all(hwc[..., 1:] == 0)
    assert chw.shape == (3, 3, 4) and np.all(chw[0] == 255) and np.all(chw[1:] == 0)
    flat = to_model_input(image, [9], "uint8")
    assert flat.shape == (9,) and np.all(flat == 76)
    grey = np.full((2, 2), 9, np.uint8)
    assert np.all(to_model_input(grey, [3, 2, 2], "uint8") == 9)  # gray repeated into 3 channels
    assert image_layout([784]).height == 28
    for shape in ([10], [5, 5, 5], [2, 3, 4, 5], [4, 4, 2]):
        with pytest.raises(ImageError, match="not an image layout") as caught:
            to_model_input(image, shape, "uint8", source="x.png")
        assert str(caught.value).startswith("x.png: preprocess.raw_shape: ")


def test_bad_images_and_dtypes_are_image_errors():
    with pytest.raises(ImageError, match="uint8; received float64"):
        to_model_input(np.zeros((2, 2)), [2, 2], "uint8")
    with pytest.raises(ImageError, match=r"received shape \[2, 2, 5\]"):
        to_model_input(np.zeros((2, 2, 5), np.uint8), [2, 2], "uint8")
    with pytest.raises(ImageError, match=r"received shape \[0, 2\]"):
        to_model_input(np.zeros((0, 2), np.uint8), [2, 2], "uint8")
    with pytest.raises(ImageError, match="dtype 'int32'"):
        to_model_input(np.zeros((2, 2), np.uint8), [2, 2], "int32")
    with pytest.raises(ImageError, match="float_max"):
        to_model_input(np.zeros((2, 2), np.uint8), [2, 2], "float32", float_max=0)


def test_a_drawn_digit_becomes_an_mnist_like_input(tmp_path):
    """A 280x280 black-on-white drawing with a transparent margin, read from a PNG file:
    composited on white, inverted by the border, area-averaged to 28x28."""
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[20:260, 20:260] = (255, 255, 255, 255)  # white paper, transparent margin
    rgba[60:220, 130:150] = (0, 0, 0, 255)  # a black vertical stroke: a "1"
    path = tmp_path / "one.png"
    path.write_bytes(encode_png(rgba, 6, 8, filters=(1, 4)))
    x = to_model_input(read_image(path), [28, 28], "uint8", invert=None, source=str(path))
    assert x.shape == (28, 28) and x.dtype == np.uint8
    assert np.all(x[6:22, 13:15] == 255)  # the stroke: 10x10 blocks fully inside it
    assert np.all(x[:6] == 0) and np.all(x[:, :13] == 0) and np.all(x[22:] == 0)

"""Pixel hand-off between host applications and kilnd's shared-memory images.

No host API here: plain bytes in, plain bytes out, so Krita (BGRA bytes from Node.pixelData),
Blender (float RGBA, rows bottom-up) and scripts share it. The channel reordering itself is
done in C++ by kiln.Image.write / kiln.Image.tobytes in one pass; numpy is used when present
for the few operations that need arithmetic, with a pure-Python fallback so a host without
numpy still works (slower).
"""

try:  # Krita builds without numpy exist; Blender always bundles it.
    import numpy as _np
except ImportError:  # pragma: no cover - exercised only where numpy is missing
    _np = None


def has_numpy():
    return _np is not None


def image_from_pixels(client, data, width, height, layout="RGBA", channels=4, flip_y=False):
    """A new shared-memory image of `client` holding `data` (tightly packed u8 rows in `layout`,
    e.g. "BGRA" for Krita). One copy: straight from `data` into shared memory."""
    image = client.create_image(width, height, channels)
    image.write(data, layout, flip_y)
    return image


def flatten_onto(data, width, height, background=(255, 255, 255), layout="BGRA"):
    """Composites 4-channel u8 pixels over an opaque background colour (given as R, G, B) and
    returns bytes in the same layout with alpha 255. kilnd drops alpha from init images, which
    would turn transparent areas (stored as black) black; artists expect the paper colour."""
    if layout not in ("BGRA", "RGBA"):
        raise ValueError("flatten_onto takes BGRA or RGBA pixels")
    bg = list(background) if layout == "RGBA" else [background[2], background[1], background[0]]
    expected = width * height * 4
    if len(data) != expected:
        raise ValueError("flatten_onto: %d bytes for a %dx%d image (expected %d)" % (len(data), width, height, expected))
    if _np is not None:
        px = _np.frombuffer(bytes(data) if not isinstance(data, (bytes, bytearray, memoryview)) else data,
                            dtype=_np.uint8).reshape(height, width, 4)
        alpha = px[..., 3:4].astype(_np.uint16)
        colour = px[..., :3].astype(_np.uint16)
        bg_arr = _np.array(bg, dtype=_np.uint16).reshape(1, 1, 3)
        out = _np.empty_like(px)
        # Rounded integer blend: (c*a + bg*(255-a) + 127) / 255.
        out[..., :3] = ((colour * alpha + bg_arr * (255 - alpha) + 127) // 255).astype(_np.uint8)
        out[..., 3] = 255
        return out.tobytes()
    src = bytes(data)
    out = bytearray(src)
    for i in range(0, expected, 4):
        a = src[i + 3]
        if a == 255:
            continue
        for c in range(3):
            out[i + c] = (src[i + c] * a + bg[c] * (255 - a) + 127) // 255
        out[i + 3] = 255
    return bytes(out)


def multiply_alpha(data, mask, width, height):
    """Returns 4-channel u8 pixels whose alpha is scaled by a 1-channel mask (0..255): the part
    of a result outside a selection becomes transparent."""
    if len(data) != width * height * 4 or len(mask) != width * height:
        raise ValueError("multiply_alpha: pixel and mask sizes do not match %dx%d" % (width, height))
    if _np is not None:
        px = _np.frombuffer(bytes(data), dtype=_np.uint8).reshape(height, width, 4).copy()
        m = _np.frombuffer(bytes(mask), dtype=_np.uint8).reshape(height, width).astype(_np.uint16)
        px[..., 3] = ((px[..., 3].astype(_np.uint16) * m + 127) // 255).astype(_np.uint8)
        return px.tobytes()
    out = bytearray(data)
    m = bytes(mask)
    for i in range(width * height):
        out[4 * i + 3] = (out[4 * i + 3] * m[i] + 127) // 255
    return bytes(out)


def alpha_bounds(data, width, height, channels=4, alpha_index=3):
    """(x, y, w, h) of the pixels with non-zero alpha, or None when all are transparent."""
    if _np is not None:
        a = _np.frombuffer(bytes(data), dtype=_np.uint8).reshape(height, width, channels)[..., alpha_index]
        rows = _np.flatnonzero(a.any(axis=1))
        if rows.size == 0:
            return None
        cols = _np.flatnonzero(a.any(axis=0))
        return (int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))
    src = bytes(data)
    x0, y0, x1, y1 = width, height, -1, -1
    for y in range(height):
        row = src[y * width * channels:(y + 1) * width * channels]
        alphas = row[alpha_index::channels]
        if not any(alphas):
            continue
        y0 = min(y0, y)
        y1 = y
        first = next(i for i, v in enumerate(alphas) if v)
        last = width - 1 - next(i for i, v in enumerate(reversed(alphas)) if v)
        x0 = min(x0, first)
        x1 = max(x1, last)
    if y1 < 0:
        return None
    return (x0, y0, x1 - x0 + 1, y1 - y0 + 1)


def crop(data, width, height, box, channels=4):
    """The pixels of `box` (x, y, w, h) out of a tightly packed image."""
    x, y, w, h = box
    row = width * channels
    src = memoryview(bytes(data) if not isinstance(data, (bytes, bytearray)) else data)
    return b"".join(bytes(src[(y + r) * row + x * channels:(y + r) * row + (x + w) * channels]) for r in range(h))


def float_rgba_to_u8(values, width, height):
    """Blender's Image.pixels (float RGBA, 0..1, rows bottom-up) -> RGBA u8 rows top-down."""
    if _np is None:
        raise RuntimeError("float pixel conversion needs numpy")
    a = _np.asarray(values, dtype=_np.float32).reshape(height, width, 4)[::-1]
    return (_np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(_np.uint8).tobytes()


def u8_to_float_rgba(data, width, height, channels=4):
    """RGB(A) u8 rows top-down -> flat float RGBA, rows bottom-up, for Blender's Image.pixels."""
    if _np is None:
        raise RuntimeError("float pixel conversion needs numpy")
    a = _np.frombuffer(bytes(data), dtype=_np.uint8).reshape(height, width, channels)[::-1]
    out = _np.ones((height, width, 4), dtype=_np.float32)
    out[..., :channels] = a.astype(_np.float32) / 255.0
    return out.ravel()


def linear_float_rgba_to_srgb_u8(values, width, height):
    """Blender's float Image.pixels in scene-linear (float images: EXR, HDR; rows bottom-up) ->
    RGBA u8 rows top-down, through the standard sRGB curve (what the Image Editor shows for a float
    image without 'View as Render'). Alpha stays linear."""
    if _np is None:
        raise RuntimeError("float pixel conversion needs numpy")
    a = _np.clip(_np.asarray(values, dtype=_np.float32).reshape(height, width, 4)[::-1], 0.0, 1.0)
    rgb = a[..., :3]
    srgb = _np.where(rgb <= 0.0031308, rgb * 12.92, 1.055 * _np.power(rgb, 1.0 / 2.4) - 0.055)
    out = _np.empty((height, width, 4), dtype=_np.uint8)
    out[..., :3] = (_np.clip(srgb, 0.0, 1.0) * 255.0 + 0.5).astype(_np.uint8)
    out[..., 3] = (a[..., 3] * 255.0 + 0.5).astype(_np.uint8)
    return out.tobytes()

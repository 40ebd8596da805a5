"""Reading the A1111 infotext kilnd writes into its PNGs, without any host API or image library.

kilnd stores the settings of every image in a PNG text chunk named `parameters`, as AUTOMATIC1111
does: the prompt, then 'Negative prompt: ...', then one line 'Steps: 20, Sampler: Euler a, CFG
scale: 7, Seed: 1234, Size: 512x512, ...'. Plugins read it back to show an image's seed or to
check a frame of an animation was made with the run's seed.
"""

import re
import struct
import zlib

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A1111's own pattern for 'Key: value' pairs; quoted values may hold commas.
_PARAM = re.compile(r'\s*([\w ]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


class InfotextError(ValueError):
    pass


def read_png_text(path):
    """{keyword: text} of a PNG's tEXt, zTXt and iTXt chunks (stops at the image data's end)."""
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(_PNG_SIGNATURE):
        raise InfotextError("%s is not a PNG file" % path)
    texts = {}
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            texts[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            texts[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            compressed = rest[0]  # then the method byte (0: zlib)
            _lang, _, rest = rest[2:].partition(b"\0")
            _translated, _, value = rest.partition(b"\0")
            if compressed:
                value = zlib.decompress(value)
            texts[key.decode("latin-1")] = value.decode("utf-8")
        elif kind == b"IEND":
            break
    return texts


def parse_infotext(text):
    """{'prompt', 'negative', 'params': {'Steps': '20', 'Seed': '1234', ...}} of an A1111 infotext."""
    lines = (text or "").strip().split("\n")
    params_line = ""
    if lines and _PARAM.findall(lines[-1]) and len(_PARAM.findall(lines[-1])) >= 3:
        params_line = lines.pop()
    prompt, negative, in_negative = [], [], False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        (negative if in_negative else prompt).append(line)
    params = {}
    for key, value in _PARAM.findall(params_line):
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        params[key.strip()] = value
    return {"prompt": "\n".join(prompt).strip(), "negative": "\n".join(negative).strip(), "params": params}


def png_infotext(path):
    """The parsed infotext of one of kilnd's PNGs (empty fields when it has none)."""
    return parse_infotext(read_png_text(path).get("parameters", ""))


def png_seed(path):
    """The seed recorded in a PNG's infotext, or None."""
    value = png_infotext(path)["params"].get("Seed")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None

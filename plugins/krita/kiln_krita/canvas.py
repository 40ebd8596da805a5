"""Krita documents and layers <-> pixels: the only module that reads or writes Krita's pixels.

Krita's Node.pixelData / setPixelData are BGRA bytes for 8-bit RGBA documents; the selection's
pixelData is one byte per pixel (0 = unselected, 255 = selected).
"""

from krita import Krita

from .backend import pixels, requests


class UserError(Exception):
    """Something the user can fix; the message says how."""


class UnsupportedDocument(UserError):
    """A colour model the plugin does not read. `convertible`: setColorSpace can fix it."""

    def __init__(self, message, convertible=True):
        super().__init__(message)
        self.convertible = convertible


SRGB_PROFILE = "sRGB-elle-V2-srgbtrc.icc"  # Krita's default sRGB profile


def check_document(doc):
    """Raises UnsupportedDocument unless `doc` is 8-bit RGBA in an sRGB profile."""
    if doc is None:
        raise UserError("Open or create a document first.")
    model, depth, profile = doc.colorModel(), doc.colorDepth(), doc.colorProfile() or ""
    if model != "RGBA" or depth != "U8":
        raise UnsupportedDocument(
            "Kiln works on 8-bit RGB/Alpha documents; this one is %s %s. Convert it to 8-bit sRGB "
            "(Image > Convert Image Color Space) or let Kiln convert it." % (model, _depth_name(depth)))
    if "srgb" not in profile.lower():
        raise UnsupportedDocument(
            "Kiln expects sRGB colours; this document uses the profile '%s'. Convert it to sRGB first, "
            "or let Kiln convert it." % profile)


def _depth_name(depth):
    return {"U8": "8-bit integer", "U16": "16-bit integer", "F16": "16-bit float", "F32": "32-bit float"}.get(depth, depth)


def convert_to_srgb8(doc):
    """Converts the document to 8-bit RGBA sRGB (undoable in Krita)."""
    if not doc.setColorSpace("RGBA", "U8", SRGB_PROFILE):
        raise UserError("Krita could not convert the document to 8-bit sRGB.")
    doc.waitForDone()


def selection_rect(doc):
    """(x, y, w, h) of the selection's bounds, or None without a (non-empty) selection."""
    sel = doc.selection()
    if sel is None or sel.width() <= 0 or sel.height() <= 0:
        return None
    return (sel.x(), sel.y(), sel.width(), sel.height())


def generation_region(doc, mode, native=512):
    """The area to generate: the selection's bounds (grown for inpainting context) or the whole
    canvas, rounded to multiples of 8 (see kiln.requests.plan_region). `native`: the model's own
    size (512 SD 1.x, 1024 SDXL), for the size note."""
    rect = selection_rect(doc)
    if mode == "inpaint" and rect is None:
        raise UserError("Inpainting repaints the selected area: select it first.")
    if rect is None:
        rect = (0, 0, doc.width(), doc.height())
    context = 32 if mode == "inpaint" else 0
    return requests.plan_region(rect[0], rect[1], rect[2], rect[3], doc.width(), doc.height(), context=context,
                                native=native)


def canvas_region(doc, native=512):
    """The whole canvas as a generation region (rounded to multiples of 8, see plan_region)."""
    return requests.plan_region(0, 0, doc.width(), doc.height(), doc.width(), doc.height(), native=native)


def read_source(doc, node, rect, visible=False):
    """BGRA bytes of `rect` from a layer (or, with visible=True, from the visible image)."""
    x, y, w, h = rect
    if visible:
        doc.refreshProjection()
        data = doc.pixelData(x, y, w, h)
    else:
        if node is None:
            raise UserError("Select the layer to start from.")
        data = node.pixelData(x, y, w, h)
    if data is None or len(data) != w * h * 4:
        raise UserError("Krita returned no pixels for the layer '%s'." % (node.name() if node else "image"))
    return bytes(data)


def read_selection_mask(doc, rect):
    """One byte per pixel of the selection over `rect` (255 = selected)."""
    sel = doc.selection()
    if sel is None:
        raise UserError("There is no selection.")
    x, y, w, h = rect
    data = bytes(sel.pixelData(x, y, w, h))
    if len(data) != w * h:
        raise UserError("Krita returned no selection mask.")
    return data


def insert_layer(doc, bgra, rect, name, above=None):
    """A new paint layer named `name` holding `bgra` at `rect`, placed just above `above` (in its
    group), or at the top. Returns the new node, made active."""
    x, y, w, h = rect
    layer = doc.createNode(name, "paintlayer")
    parent = above.parentNode() if above is not None else None
    if parent is None:
        # No layer to stand on (or the root itself): the top of the stack. Krita adds a node
        # with no `above` at the bottom, so name the current top layer.
        parent = doc.rootNode()
        children = parent.childNodes()
        above = children[-1] if children else None
    if not parent.addChildNode(layer, above):
        raise UserError("Krita refused to add the layer '%s'." % name)
    layer.setPixelData(bgra, x, y, w, h)
    doc.setActiveNode(layer)
    doc.refreshProjection()
    return layer


def insert_layer_below(doc, bgra, rect, name, below):
    """A new paint layer named `name` holding `bgra` at `rect`, placed just below `below` in its
    group. Returns the new node."""
    x, y, w, h = rect
    layer = doc.createNode(name, "paintlayer")
    parent = below.parentNode() or doc.rootNode()
    siblings = parent.childNodes()  # bottom to top
    ids = [n.uniqueId() for n in siblings]
    index = ids.index(below.uniqueId()) if below.uniqueId() in ids else 0
    under = siblings[index - 1] if index > 0 else None  # addChildNode puts the layer above this one
    if not parent.addChildNode(layer, under):
        raise UserError("Krita refused to add the layer '%s'." % name)
    if under is None and parent.childNodes()[0].uniqueId() != layer.uniqueId():
        # Krita adds a node with no `above` at the bottom; make sure it ended there.
        raise UserError("Krita put the layer '%s' in the wrong place." % name)
    layer.setPixelData(bgra, x, y, w, h)
    return layer


def is_group(node):
    return node.type() == "grouplayer"


def is_layer(node):
    return node.type() in ("paintlayer", "grouplayer", "vectorlayer", "filelayer", "clonelayer", "filllayer")


def dataset_layers(nodes):
    """The layers to send as training images: the selected layers, or — when exactly one group is
    selected — its visible child layers (masks and hidden layers left out), top first."""
    nodes = [n for n in nodes if n is not None and is_layer(n)]
    if len(nodes) == 1 and is_group(nodes[0]):
        children = [c for c in nodes[0].childNodes() if is_layer(c) and c.visible()]
        return list(reversed(children))  # childNodes() is bottom-to-top; the layer panel shows top first
    return nodes


def export_layer(node):
    """(bgra, (x, y, w, h)) of a layer trimmed to its opaque pixels, alpha kept; None when the layer
    is empty or fully transparent."""
    b = node.bounds()
    if b.isEmpty():
        return None
    data = bytes(node.pixelData(b.x(), b.y(), b.width(), b.height()))
    if len(data) != b.width() * b.height() * 4:
        return None
    box = pixels.alpha_bounds(data, b.width(), b.height())
    if box is None:
        return None
    if box != (0, 0, b.width(), b.height()):
        data = pixels.crop(data, b.width(), b.height(), box)
    return data, (b.x() + box[0], b.y() + box[1], box[2], box[3])


def selected_nodes():
    """The layers selected in the active view (falls back to the active layer)."""
    app = Krita.instance()
    window = app.activeWindow()
    view = window.activeView() if window is not None else None
    if view is not None:
        nodes = view.selectedNodes()
        if nodes:
            return list(nodes)
    doc = app.activeDocument()
    return [doc.activeNode()] if doc is not None and doc.activeNode() is not None else []


def is_open(doc):
    """Whether `doc` is still one of Krita's open documents."""
    try:
        return any(d == doc or (d.fileName() == doc.fileName() and d.rootNode() == doc.rootNode())
                   for d in Krita.instance().documents())
    except RuntimeError:  # the underlying C++ object is gone
        return False


def open_image_document(path):
    """Opens a PNG as a new document, in a view when there is a window. Returns the document."""
    app = Krita.instance()
    doc = app.openDocument(path)
    if doc is None:
        raise UserError("Krita could not open %s." % path)
    window = app.activeWindow()
    if window is not None:
        window.addView(doc)
    return doc

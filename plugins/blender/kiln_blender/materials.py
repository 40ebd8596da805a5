"""Where a generated texture goes: the active material's Image Texture node."""

from .connection import UserError


def target_material(obj):
    """The active material of `obj`, with nodes turned on. Raises UserError."""
    if obj is None:
        raise UserError("Select the object whose material gets the texture.")
    material = getattr(obj, "active_material", None)
    if material is None:
        raise UserError("'%s' has no material: add one (Material Properties > New), then generate the texture."
                        % obj.name)
    if not material.use_nodes:
        material.use_nodes = True
    return material


def texture_node(material):
    """The Image Texture node the texture goes into: the active node when it is one, else the first
    one without an image, else a new one wired to the Principled BSDF's Base Color when that input
    is free."""
    nodes = material.node_tree.nodes
    active = nodes.active
    if active is not None and active.type == "TEX_IMAGE":
        return active
    for node in nodes:
        if node.type == "TEX_IMAGE" and node.image is None:
            return node
    node = nodes.new("ShaderNodeTexImage")
    node.label = "Kiln texture"
    bsdf = next((n for n in nodes if n.type == "BSDF_PRINCIPLED"), None)
    if bsdf is not None:
        node.location = (bsdf.location.x - 320, bsdf.location.y)
        base = bsdf.inputs.get("Base Color")
        if base is not None and not base.is_linked:
            material.node_tree.links.new(node.outputs["Color"], base)
    nodes.active = node
    return node


def assign_texture(material, image):
    """Puts `image` into the material's Image Texture node; returns the node."""
    node = texture_node(material)
    node.image = image
    # A texture made to tile is meant to repeat: the node's extension follows.
    node.extension = "REPEAT"
    return node

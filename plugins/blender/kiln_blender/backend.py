"""Where the add-on gets the `kiln` client package from.

The zip ships it inside this package (kiln_blender/kiln, with the compiled module for Blender's
Python); a development checkout finds it on PYTHONPATH instead. When neither loads (a binary
built for another Python, say), the add-on still registers and says why in its panel.
"""

kiln = None
load_error = None

try:
    from . import kiln  # noqa: F811 - the copy bundled by installers/blender/build-zip.sh
except ImportError as bundled_error:
    try:
        import kiln  # noqa: F811
    except ImportError as e:
        load_error = ("The Kiln client module could not be loaded (%s; bundled copy: %s). Reinstall the add-on "
                      "zip built for this Blender's Python." % (e, bundled_error))

if kiln is not None:
    from importlib import import_module as _im
    _pkg = kiln.__name__
    frames = _im(_pkg + ".frames")
    infotext = _im(_pkg + ".infotext")
    jobs = _im(_pkg + ".jobs")
    pixels = _im(_pkg + ".pixels")
    requests = _im(_pkg + ".requests")
    restyle = _im(_pkg + ".restyle")
    session = _im(_pkg + ".session")
    sizes = _im(_pkg + ".sizes")
else:  # pragma: no cover
    frames = infotext = jobs = pixels = requests = restyle = session = sizes = None

"""Where the plugin gets the `kiln` client package from.

The zip ships it inside this package (kiln_krita/kiln, with the compiled module for Krita's
Python); a development checkout finds it on PYTHONPATH instead. When neither loads (a binary
built for another Python, say), the plugin still starts and says why in its docker.
"""

kiln = None
load_error = None

try:
    from . import kiln  # noqa: F811 - the copy bundled by installers/krita/build-zip.sh
except ImportError as bundled_error:
    try:
        import kiln  # noqa: F811
    except ImportError as e:
        load_error = ("The Kiln client module could not be loaded (%s; bundled copy: %s). Reinstall the "
                      "plugin zip built for this Krita's Python." % (e, bundled_error))

if kiln is not None:
    from importlib import import_module as _im
    _pkg = kiln.__name__
    findings = _im(_pkg + ".findings")
    jobs = _im(_pkg + ".jobs")
    pixels = _im(_pkg + ".pixels")
    requests = _im(_pkg + ".requests")
    session = _im(_pkg + ".session")
    training = _im(_pkg + ".training")
else:  # pragma: no cover
    findings = jobs = pixels = requests = session = training = None

# Model sizes by family (kiln.sizes), for the size notes of a generation.
if kiln is not None:
    sizes = _im(_pkg + ".sizes")
else:  # pragma: no cover
    sizes = None

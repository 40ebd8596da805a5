"""Kiln's Python client: talk to kilnd, the local LoRA studio daemon.

    import kiln
    client = kiln.Client(name="my-tool 0.1")
    client.connect()                       # starts kilnd when none runs
    client.call("models.list")             # -> dict
    img = client.create_image(512, 512)    # shared memory, numpy.asarray(img) writes in place
    ...

The native part (kiln._kiln, built from shared/bindings/python/module.cpp) wraps the C++
kiln::Client. The plain-Python modules beside it hold what every host plugin needs and no host
API: pixels (layout conversions), requests (building generate/dataset/train params), jobs
(following job notifications), session (a connection pumped from the host's UI thread) and
findings (a dataset's quality findings grouped for display, each with what to do).

Threads: callables given to the client run on its background thread. Host UIs (Qt, bpy) must
only be touched from their own thread: give the client a kiln.EventQueue and drain it from a
UI timer, as kiln.session.Session does.
"""

from ._kiln import (  # noqa: F401  (re-exported)
    Client,
    ConnectionError,
    Error,
    Event,
    EventQueue,
    Image,
    ImageError,
    PROTOCOL_VERSION,
    RpcError,
    TimeoutError,
    VERSION,
    error_name,
    find_daemon,
)

__version__ = VERSION

# Error codes of protocol v1 (shared/protocol/errors.h), for callers that branch on them.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
HELLO_REQUIRED = -32001
PROTOCOL_MISMATCH = -32002
FRAME_TOO_LARGE = -32003
SHUTTING_DOWN = -32004
IMAGE_ERROR = -32010
NOT_FOUND = -32020
INVALID_STATE = -32021
INVALID_NAME = -32022
ALREADY_EXISTS = -32023
MODEL_ERROR = -32030
UNSUPPORTED = -32031
OUT_OF_MEMORY = -32032
CANCELLED = -32040
JOB_FAILED = -32041
CONNECTION_LOST = -32090
TIMEOUT = -32091

__all__ = [
    "Client", "ConnectionError", "Error", "Event", "EventQueue", "Image", "ImageError",
    "PROTOCOL_VERSION", "RpcError", "TimeoutError", "VERSION", "error_name", "find_daemon",
]

"""Other vendors' call APIs, as their clients send them: thin adapters onto `place_call`
(api/routes/compat/common.py keeps that invariant). docs/compat.md documents each."""

from api.routes.compat import contactship, iqra, voicegenie
from api.security import HOOKS_PREFIX

ROUTERS = (voicegenie.router, iqra.router, contactship.router)

# The path prefixes of these routes: each reads its body through `common.read_body`, which
# refuses one over its limit in the vendor's shape, so the app's BodyLimit leaves them be.
SELF_BOUNDED_PATHS = (
    voicegenie.PATH,
    contactship.PATH,
    iqra.INITIATE_PATH.split("{")[0],
    HOOKS_PREFIX,
)

__all__ = ["ROUTERS", "SELF_BOUNDED_PATHS"]

"""Other vendors' call APIs, as their clients send them: thin adapters onto `place_call`
(api/routes/compat/common.py keeps that invariant). docs/compat.md documents each."""

from api.routes.compat import contactship, iqra, voicegenie
from api.security import HOOKS_PREFIX

ROUTERS = (voicegenie.router, iqra.router, contactship.router)

# The path prefixes of these routes (their answers are their vendors' shapes, not Outdial's).
PATH_PREFIXES = (voicegenie.PATH, contactship.PATH, iqra.INITIATE_PATH.split("{")[0])
# Each reads its body through `common.read_body`, which refuses one over its limit in the
# vendor's shape, so the app's BodyLimit leaves these paths be (the hooks URLs too).
SELF_BOUNDED_PATHS = (*PATH_PREFIXES, HOOKS_PREFIX)

__all__ = ["PATH_PREFIXES", "ROUTERS", "SELF_BOUNDED_PATHS"]

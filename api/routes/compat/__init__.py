"""Other vendors' call APIs, as their clients send them: thin adapters onto `place_call`
(api/routes/compat/common.py keeps that invariant). docs/compat.md documents each."""

from api.routes.compat import contactship, iqra, voicegenie
from api.routes.compat.common import JSON_BODY_LIMIT

ROUTERS = (voicegenie.router, iqra.router, contactship.router)

# Each route refuses a body over its own limit in its vendor's shape; the app's BodyLimit
# stays behind it as a backstop, a little above (it answers in Outdial's shape).
_SLACK = 64 * 1024
BACKSTOP_BODY_LIMITS = {
    voicegenie.PATH: JSON_BODY_LIMIT + _SLACK,
    contactship.PATH: JSON_BODY_LIMIT + _SLACK,
    "/api/v1/business/": iqra.FORM_BODY_LIMIT + _SLACK,
    "/hooks/": iqra.FORM_BODY_LIMIT + _SLACK,
}

__all__ = ["BACKSTOP_BODY_LIMITS", "ROUTERS"]

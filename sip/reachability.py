"""Can this process reach its LiveKit server? Asked once, when a process starts.

Invariant: a LiveKit URL is only ever shown without its password (`redacted_url`), and the
check sends one unauthenticated HTTP GET: any HTTP answer means a server is listening there
(the credentials are the server API's own business); only a failure to connect, resolve
the name or finish TLS counts as unreachable, and the GET goes straight there, never through
a proxy. Shared by the API's entry points and the agent worker, which imports nothing from
`api`.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import urlsplit, urlunsplit

# LiveKit's server answers its signalling (ws) and server API (http) on one port.
_HTTP_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
# No proxy (HTTP(S)_PROXY): a proxy's own answer (a 502) would pass for LiveKit's.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def redacted_url(url: str) -> str:
    """`url` with its password, if it has one, as `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def livekit_unreachable(url: str, timeout: float = 3.0) -> str | None:
    """Why LiveKit at `url` cannot be reached, or None when an HTTP server answered."""
    parts = urlsplit(url)
    scheme = _HTTP_SCHEMES.get(parts.scheme)
    if scheme is None or not parts.hostname:
        return "not a ws://, wss://, http:// or https:// URL"
    probe = urlunsplit((scheme, parts.netloc, "/", "", ""))
    try:
        with _DIRECT.open(probe, timeout=timeout):
            return None
    except urllib.error.HTTPError as exc:
        exc.close()  # the answer's connection
        return None  # an answer, whatever its status: a server listens there
    except urllib.error.URLError as exc:
        return str(exc.reason)
    except (OSError, ValueError) as exc:  # a timeout, a reset, a malformed port
        return str(exc) or type(exc).__name__

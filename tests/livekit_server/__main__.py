"""`python -m tests.livekit_server`: the test server in its own process (see process.py)."""

from .process import main

main()

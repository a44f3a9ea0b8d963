"""Dramatiq actors (dispatch, relay) and their worker plumbing; `api.worker` loads them."""

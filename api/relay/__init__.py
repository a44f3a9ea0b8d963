"""Callback delivery: payload and signature, one HTTP attempt, retry policy, drain state."""

"""Redis is the system of record; `keys.py` documents every key and its retention."""

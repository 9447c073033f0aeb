"""One runner per tool; each does the benchmark job on a folder (see job.py)."""

"""Frames to disk in batches: the resumable run (``run``), and where each
frame is dreamed: in this process (``local``) or on a dream server (``remote``)."""

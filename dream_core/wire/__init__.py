"""What the dream server and its clients share, in the standard library
only: the add-on bundles this folder verbatim (``build.py``), so both sides
run the very same code. ``protocol`` (messages and errors), ``client``
(``DreamClient``), ``spawn`` (a server process of our own), ``atomic``
(atomic file writes), ``plans`` (frames on disk)."""

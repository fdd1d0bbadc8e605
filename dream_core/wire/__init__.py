"""How the dream server and its clients talk, in the standard library
only: the add-on bundles this folder verbatim (``build.py``), so both sides
run the very same code. ``protocol`` (messages and errors), ``client``
(``DreamClient``), ``spawn`` (a server process of our own). What a run
decides from (settings, frames, provenance, the shot planner) is
``dream_core.shot``, bundled beside it."""

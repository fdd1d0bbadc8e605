"""A shot and how it is dreamed, in the standard library only: the add-on
bundles this folder verbatim beside ``wire`` (``build.py``), so the CLI,
Ray, the farm and both of the add-on's routes decide from the very same
code. ``settings`` (every dream setting, once), ``frame_plans``
(``FramePlan``: a frame's source and target files; names in paths),
``provenance`` (what made each file: links, records, kept states),
``planner`` (the shot planner: chunks, seams, keep or dream, resume),
``atomic`` (atomic writes, and the temporaries a killed writer leaves)."""

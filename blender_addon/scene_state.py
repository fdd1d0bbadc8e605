"""Whether a scene would render now as it did when a render was made: the
provenance of our raw renders (Dream Animation reuses a render only then).

A render's record keeps a *token* of the scene state it was made from:

- ``settings``: a digest of the scene's own render settings (engine,
  samples, resolution, camera, world, view layers, compositing...) read
  through RNA; what only decides where and how the render is written
  (output path, file format, frame range) is left out;
- ``session`` and ``edits``: this Blender session's id for the loaded file
  and how many changes to its data Blender's dependency graph has reported
  since (objects, meshes, materials, node trees, worlds, lights, images,
  actions...: anything but the scene's own settings, which the digest covers);
- ``file``: when nothing was changed since the .blend was loaded or saved,
  a digest of that file, so a later session (or another farm machine) that
  opens the same file unchanged can reuse the render.

A render is reused when the settings match and either the session and its
count of edits are the same, or both tokens name the same saved file
(``render_records.scene_matches``). In doubt (a render made from unsaved
changes, in another session) it is made again. What the dependency graph
does not report is not seen: image textures, caches or linked libraries
changed on disk, and Python drivers that read outside state. Re-render
(``Dream Animation`` with *Render Again*) covers those.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import threading
import uuid
from typing import Optional

import bpy
from bpy.app.handlers import persistent

from . import render_chunk

_session = uuid.uuid4().hex  # the loaded file in this Blender; a new one on every load
_edits = 0  # changes to the data reported since the file was loaded
_clean_at: Optional[int] = None  # _edits when the data last equalled the file on disk, else None
_file_stat: Optional[tuple] = None  # the file's (path, size, mtime) at that moment
_digests: dict[tuple, str] = {}
_saved_ranges: dict[str, tuple[int, int, int]] = {}  # each scene's frame range as the file was loaded
_pending = False  # enabled before Blender let add-ons see the data (--addons): read it at first use

# Scene settings that do not change the rendered pixels, or that we set ourselves for a render.
SKIPPED = {"filepath", "use_file_extension", "file_extension", "is_movie_format", "image_settings", "frame_current",
           "frame_float", "frame_current_final", "frame_start", "frame_end", "frame_step", "frame_preview_start",
           "frame_preview_end", "use_preview_range", "use_overwrite", "use_placeholder", "ffmpeg", "dream",
           "use_pass_vector", "use_pass_cryptomatte_object", "view_settings", "display_settings",
           "sequencer_colorspace_settings", "use_lock_interface", "cycles_curves", "keying_sets", "keying_sets_all",
           "timeline_markers", "tool_settings", "unit_settings", "sequence_editor", "rigidbody_world", "cursor",
           "statistics", "bake", "is_evaluated", "original", "session_uid", "name", "name_full", "is_dirty", "users",
           "use_fake_user", "tag", "is_runtime_data", "preview", "library", "library_weak_reference",
           "override_library", "asset_data", "is_missing", "id_type",
           "dither_intensity"}  # rounds 8-bit files only: our renders are float EXR


def token(scene) -> dict:
    """The state ``scene`` renders from now. Changes not yet evaluated (a
    script's, just before) are evaluated first, on the main thread (a
    window's render thread leaves that to the window, which evaluates them)."""
    global _pending, _clean_at
    if threading.current_thread() is threading.main_thread():
        bpy.context.evaluated_depsgraph_get()
    if _pending:  # enabled by --addons after the file was loaded: the data was that file then
        _pending = False
        _now_clean()
        _clean_at = 0 if _file_stat is not None else None  # what was edited since registering counts
    return {"settings": settings_digest(scene), "session": _session, "edits": _edits, "file": _file_digest()}


def saved_range(scene) -> tuple[int, int, int]:
    """The scene's frame range (start, end, step) as the .blend was saved
    (kept in the file itself), or loaded: a farm's ``-s A -e B`` renders a
    chunk of that shot."""
    return render_chunk.saved_range(tuple(scene.dream.shot_range), _saved_ranges.get(scene.name),
                                    (scene.frame_start, scene.frame_end, scene.frame_step))


def settings_digest(scene) -> str:
    """The scene's render settings: its own values (camera and world by
    name), Blender's render, Eevee and Grease Pencil settings, every render
    engine add-on's (Cycles, LuxCoreRender...: their settings hang on the
    scene as property groups), and each view layer's."""
    values = [_rna_values(scene, 0, SKIPPED)]
    engines = [prop.identifier for prop in scene.bl_rna.properties if prop.type == "POINTER"
               and prop.identifier not in SKIPPED and isinstance(getattr(scene, prop.identifier, None),
                                                                  bpy.types.PropertyGroup)]
    for name in ("render", "eevee", "grease_pencil_settings", *sorted(engines)):
        group = getattr(scene, name, None)
        if group is not None:
            values.append([name, _rna_values(group, 2, SKIPPED)])
    for layer in scene.view_layers:
        values.append(["view_layer", layer.name, _rna_values(layer, 1, SKIPPED)])
    return hashlib.sha256(repr(values).encode()).hexdigest()[:32]


def _rna_values(struct, depth: int, skipped: set) -> list:
    """The values of ``struct``'s RNA properties; pointers to data blocks by
    name (their own changes are edits), other pointers ``depth`` deep."""
    values = []
    for prop in struct.bl_rna.properties:
        name = prop.identifier
        if name == "rna_type" or name in skipped or prop.type == "COLLECTION":
            continue
        if prop.type == "ENUM" and isinstance(struct, bpy.types.PropertyGroup):
            # an add-on's setting (Cycles') as stored: Blender warns when it reads a value this build has no
            # item for (Debian's Blender has no OpenImageDenoise)
            values.append((name, struct.get(name)))
            continue
        try:
            value = getattr(struct, name)
        except (AttributeError, RuntimeError):
            continue
        if prop.type == "POINTER":
            if value is None or isinstance(value, bpy.types.ID):
                values.append((name, getattr(value, "name_full", None)))
            elif depth > 0:
                values.append((name, _rna_values(value, depth - 1, skipped)))
        elif isinstance(value, (set, frozenset)):  # enum flags: no order of their own
            values.append((name, tuple(sorted(value))))
        elif hasattr(value, "__len__") and not isinstance(value, str):
            values.append((name, tuple(round(v, 6) if isinstance(v, float) else v for v in value)))
        else:
            values.append((name, round(value, 6) if isinstance(value, float) else value))
    return values


def _file_digest() -> Optional[str]:
    """A digest of the .blend, while the data is what was loaded or saved."""
    if _clean_at != _edits or _file_stat is None or _stat(_file_stat[0]) != _file_stat:
        return None
    if _file_stat not in _digests:
        sha = hashlib.sha256()
        with open(_file_stat[0], "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha.update(block)
        _digests[_file_stat] = sha.hexdigest()[:32]
    return _digests[_file_stat]


def _stat(path: str) -> Optional[tuple]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return path, st.st_size, st.st_mtime_ns


def _now_clean() -> None:
    """The data is the file on disk (just loaded or saved)."""
    global _clean_at, _file_stat
    _file_stat = _stat(bpy.data.filepath) if bpy.data.filepath else None
    _clean_at = _edits if _file_stat is not None else None
    _saved_ranges.clear()
    _saved_ranges.update({s.name: (s.frame_start, s.frame_end, s.frame_step) for s in bpy.data.scenes})


_own = False  # the updates being evaluated are of our own changes


@contextlib.contextmanager
def own_changes(context):
    """Changes the add-on makes to the data itself (a strip and the scene
    that holds it, a helper scene, the render's own outputs) are not edits
    of the scene: what is pending is evaluated first (a user's edit still
    counts), then ours, apart. Off the main thread (a window's render
    handlers) nothing may be evaluated: there it changes nothing."""
    global _own
    if threading.current_thread() is not threading.main_thread() or _own or _rendering:
        # (within our own already; or while Blender renders, whose frame changes leave updates that only its
        # own end evaluates: evaluated here, they would count as edits)
        yield
        return
    context.evaluated_depsgraph_get()
    _own = True
    try:
        yield
        context.evaluated_depsgraph_get()
    finally:
        _own = False


def move_to_frame(scene, frame: int) -> None:
    """``scene.frame_set(frame)`` of our own (a frame's settings evaluated,
    a frame rendered, the user's frame given back): the updates a frame
    change leaves pending are no edit of the scene."""
    with own_changes(bpy.context):
        scene.frame_set(frame)


@persistent
def _on_update(_scene, depsgraph) -> None:
    global _edits
    if not _own and any(not isinstance(update.id, bpy.types.Scene) for update in depsgraph.updates):
        _edits += 1


_rendering = 0  # Dream on Render's handlers running (see while_rendering)


def while_rendering(handler):
    """Marks a handler of Blender's render (Dream on Render's): what it
    changes is not evaluated apart (see own_changes). Blender's own frame
    changes leave updates that only its render's end evaluates, unreported;
    evaluated in a handler, they were reported, and counted as edits."""
    @functools.wraps(handler)
    def marked(*args):
        global _rendering
        _rendering += 1
        try:
            return handler(*args)
        finally:
            _rendering -= 1
    return marked


@persistent
def _on_load(*_args) -> None:
    global _session, _edits, _pending
    _session, _edits, _pending = uuid.uuid4().hex, 0, False
    _now_clean()


@persistent
def _on_save_pre(*_args) -> None:
    """The shot's range goes into the file with it (see saved_range)."""
    for scene in bpy.data.scenes:
        if tuple(scene.dream.shot_range) != (scene.frame_start, scene.frame_end):
            scene.dream.shot_range = (scene.frame_start, scene.frame_end)


@persistent
def _on_save(*_args) -> None:
    _now_clean()
    _renders_name_the_file()


def _renders_name_the_file() -> None:
    """Dream Animation's renders made from the data just saved (this
    session, no edit since) now name the saved file too: a later session
    that opens it unchanged reuses them (a save once made every render look
    like one of another file, and the next session rendered them all again)."""
    digest = _file_digest()
    if digest is None:
        return
    from . import scene_frames  # (it imports this module)

    for scene in bpy.data.scenes:
        try:
            _name_the_file(scene, scene_frames, digest)
        except Exception as err:  # noqa: BLE001 (a save never fails for us: its renders are made again instead)
            print(f"Dream Renders: the renders of {scene.name!r} will be made again: {err}", flush=True)


def _name_the_file(scene, scene_frames, digest: str) -> None:
    records = scene_frames.records(scene)
    for frame in range(scene.frame_start, scene.frame_end + 1):
        path = scene_frames.frame_file(scene, "renders", frame)
        record = records.file(path) if os.path.exists(path) else None
        made_from = record.extra.get("scene") if record is not None and record.made == "render" else None
        if made_from and made_from.get("session") == _session and made_from.get("edits") == _edits \
                and made_from.get("file") != digest:
            made_from["file"] = digest
            records.write_file(path, record)


HANDLERS = (("depsgraph_update_post", _on_update), ("load_post", _on_load), ("save_pre", _on_save_pre),
            ("save_post", _on_save))


def register() -> None:
    global _clean_at, _pending
    for name, handler in HANDLERS:
        getattr(bpy.app.handlers, name).append(handler)
    if not isinstance(bpy.data, bpy.types.BlendData):
        _pending = True  # at start-up (a load follows and tells) or by --addons after the file was loaded
        return
    # enabled after the file was loaded (--addons): it is the file only if Blender says nothing changed
    _now_clean()
    if bpy.data.is_dirty:
        _clean_at = None


def unregister() -> None:
    for name, handler in HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        if handler in handlers:
            handlers.remove(handler)

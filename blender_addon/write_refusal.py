"""Freeing Blender's refusal of Python writes when it stays on (see
:mod:`.render_thread`).

Each Python call Blender makes that switches the refusal restores, when it
returns, the value it found. So the flag is freed by two calls that overlap
in the right order, on two threads:

1. a helper thread sets a hidden window-manager property whose update
   callback Blender runs with writes allowed (it allows them for the
   callback and puts back the stale refusal after);
2. while that callback waits, the main thread calls an operator's ``poll``:
   Blender notes "allowed" on entering it;
3. the callback returns (Blender puts the refusal back), then the poll
   returns and Blender restores what it noted: writes allowed.

Run where no draw is under way (a timer), the order is the same each time;
with the flag not stuck it changes nothing. Whether it is stuck is seen by
writing ``ID.tag`` (a flag Blender keeps for scripts, with no update) its
own value: refused on the main thread outside a draw, it is stuck."""
from __future__ import annotations

import threading

import bpy
from bpy.props import IntProperty

from . import render_thread

WAIT = 5.0  # s the two halves wait for each other at most (a loaded machine): the window never hangs on this


class _Handshake:
    def __init__(self) -> None:
        self.allowed = threading.Event()  # the helper's update callback runs (writes allowed)
        self.noted = threading.Event()  # the main thread's poll runs (Blender noted "allowed")
        self.restored = threading.Event()  # the helper's setter returned (Blender put the refusal back)


_handshake = _Handshake()


def _in_update(_wm, _context) -> None:
    _handshake.allowed.set()
    _handshake.noted.wait(WAIT)


class DREAM_OT_write_refusal(bpy.types.Operator):
    """Internal: its poll is the main thread's half of freeing a stuck refusal"""

    bl_idname = "dream.write_refusal"
    bl_label = "Free Write Refusal"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, _context) -> bool:
        if _handshake.allowed.is_set() and not _handshake.noted.is_set():
            _handshake.noted.set()
            _handshake.restored.wait(WAIT)
        return False


def free() -> None:
    """Frees a stuck refusal: on the main thread, outside any draw."""
    global _handshake
    _handshake = _Handshake()
    wm = bpy.context.window_manager

    def set_gate() -> None:
        try:
            wm.dream_write_gate += 1
        finally:
            _handshake.restored.set()

    helper = threading.Thread(target=set_gate, name="dream-renders-write-refusal", daemon=True)
    helper.start()
    if _handshake.allowed.wait(WAIT):
        bpy.ops.dream.write_refusal.poll()
    helper.join(WAIT)


def is_stuck() -> bool:
    """On the main thread outside a draw: whether Python writes are refused."""
    scene = next(iter(bpy.data.scenes), None)
    if scene is None:
        return False
    try:
        scene.tag = scene.tag
    except AttributeError as err:
        return render_thread.refused_while_rendering(err)
    return False


def free_if_stuck() -> None:
    """The add-on's timer: a render thread's writes wait for this."""
    if is_stuck():
        free()


def register() -> None:
    bpy.types.WindowManager.dream_write_gate = IntProperty(update=_in_update, options={"HIDDEN", "SKIP_SAVE"})
    bpy.utils.register_class(DREAM_OT_write_refusal)
    render_thread.free_refusal = free


def unregister() -> None:
    render_thread.free_refusal = render_thread.no_freeing
    bpy.utils.unregister_class(DREAM_OT_write_refusal)
    del bpy.types.WindowManager.dream_write_gate

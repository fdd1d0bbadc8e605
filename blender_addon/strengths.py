"""Per-object dream strengths: which objects dream, and how hard.

An object's own strength wins; without one it takes the nearest collection
above it that has one (a child collection before its parent), else 1. The
world has the scene's Background Strength. The server turns these into a
per-pixel map with the frame's Cryptomatte object pass, which our renders
carry whenever a strength is set (:func:`in_use`).
"""
from __future__ import annotations

from typing import Optional

# objects that can cover pixels (lights, cameras and empties never do)
VISIBLE_TYPES = {"MESH", "CURVE", "CURVES", "SURFACE", "META", "FONT", "VOLUME", "POINTCLOUD", "GPENCIL",
                 "GREASEPENCIL"}


def in_use(scene) -> bool:
    """Whether any strength is set: then renders need the Cryptomatte pass
    and every frame sends the strengths (set means set, even where a
    keyframed value passes through 1)."""
    if scene.dream.background_strength != 1.0 or _is_animated(scene, "dream.background_strength"):
        return True
    if any(c.dream.use_strength for c in _collections(scene.collection)):
        return True
    return any(obj.dream.use_strength for obj in scene.objects)


def _is_animated(owner, path: str) -> bool:
    action = owner.animation_data.action if owner.animation_data else None
    return action is not None and any(fc.data_path == path for fc in getattr(action, "fcurves", ()))


def _collections(root):
    yield root
    for child in root.children:
        yield from _collections(child)


def collection_strengths(scene) -> dict:
    """Object name -> (strength, collection name) its collections give it;
    objects in no collection with a strength are left out."""
    found: dict = {}

    def depth_first(collection, inherited: Optional[tuple]) -> None:
        # children first: an object linked in a child and in its parent takes the child's value
        own = (collection.dream.strength, collection.name) if collection.dream.use_strength else inherited
        for child in collection.children:
            depth_first(child, own)
        if own is not None:
            for obj in collection.objects:
                found.setdefault(obj.name, own)

    depth_first(scene.collection, None)
    return found


def object_strength(obj, from_collections: dict) -> float:
    if obj.dream.use_strength:
        return obj.dream.strength
    return from_collections.get(obj.name, (1.0, None))[0]


def strength_params(scene) -> Optional[dict]:
    """The server's ``objects`` setting at the current frame, or None when no strength is set."""
    if not in_use(scene):
        return None
    inherited = collection_strengths(scene)
    objects = {obj.name: round(object_strength(obj, inherited), 4) for obj in scene.objects
               if obj.type in VISIBLE_TYPES}
    return {"objects": {name: value for name, value in objects.items() if value != 1.0},
            "others": 1.0, "background": round(scene.dream.background_strength, 4)}


def clear(scene) -> None:
    """Every object and collection back to no strength of its own, the world to 1."""
    for obj in scene.objects:
        obj.dream.use_strength = False
    for collection in _collections(scene.collection):
        collection.dream.use_strength = False
    scene.dream.background_strength = 1.0


def dream_only(scene, selected) -> None:
    """The selected objects dream at 1, every other object and the world not at all."""
    chosen = {obj.name for obj in selected}
    for obj in scene.objects:
        if obj.type in VISIBLE_TYPES:
            obj.dream.strength = 1.0 if obj.name in chosen else 0.0
            obj.dream.use_strength = True
    scene.dream.background_strength = 0.0

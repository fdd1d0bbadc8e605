"""Every difference between Blender 3.4 and 5.0 that the add-on meets, in one place."""
from __future__ import annotations

import os
import sys

import bpy

VERSION = bpy.app.version

# options of a path property that accepts "//" (relative to the .blend): needed from 4.5, unknown before
BLEND_RELATIVE_PATH = {"PATH_SUPPORTS_BLEND_RELATIVE"} if VERSION >= (4, 5, 0) else set()
# the noise Blender dithers 8-bit files with (dream_core.io.dither): measured in 3.4.1 and 5.0.1
DITHER_PATTERN = "blender4" if VERSION >= (4, 0, 0) else "blender3"


def strips(scene):
    """The top-level strips collection: ``strips`` (4.4+) or ``sequences``."""
    sed = ensure_sequence_editor(scene)
    return sed.strips if hasattr(sed, "strips") else sed.sequences


def all_strips(scene):
    sed = scene.sequence_editor
    if sed is None:
        return []
    return list(sed.strips_all if hasattr(sed, "strips_all") else sed.sequences_all)


def ensure_sequence_editor(scene):
    if scene.sequence_editor is None:
        scene.sequence_editor_create()
    return scene.sequence_editor


def active_strip(scene):
    sed = scene.sequence_editor
    return None if sed is None else sed.active_strip


def set_multilayer_exr(image_settings) -> None:
    """Blender 5.0 asks for the media type before the multilayer format."""
    if hasattr(image_settings, "media_type"):
        image_settings.media_type = "MULTI_LAYER_IMAGE"
    image_settings.file_format = "OPEN_EXR_MULTILAYER"
    image_settings.color_depth = "32"


def has_cli_commands() -> bool:
    return hasattr(bpy.utils, "register_cli_command")


def engine_has_vector_pass(scene) -> bool:
    """Cycles fills the Vector pass unless motion blur is on; Eevee Next (4.2+) has it too."""
    engine = scene.render.engine
    if engine == "CYCLES":
        return not scene.render.use_motion_blur
    return engine in ("BLENDER_EEVEE_NEXT", "BLENDER_EEVEE") and VERSION >= (4, 2, 0)


def engine_has_cryptomatte(scene) -> bool:
    """Cycles and Eevee write the Cryptomatte passes; Workbench and most external engines do not."""
    return scene.render.engine in ("CYCLES", "BLENDER_EEVEE", "BLENDER_EEVEE_NEXT")


def user_data_folder(package: str, name: str) -> str:
    """A folder of the add-on's own that upgrades keep: the extension's user
    directory (4.2+), else one in Blender's user configuration folder."""
    if package.startswith("bl_ext.") and hasattr(bpy.utils, "extension_path_user"):
        return bpy.utils.extension_path_user(package, path=name, create=True)
    return bpy.utils.user_resource("CONFIG", path=os.path.join(package, name), create=True)


def drop_script_main_alias() -> None:
    """Forget ``sys.modules["__mp_main__"]`` where it is, or will become, a gutted module.

    Importing ``multiprocessing`` (``wire.protocol`` needs ``multiprocessing.connection``)
    makes ``__mp_main__`` an alias of the ``__main__`` of that moment. When the add-on is
    enabled from a ``--python`` FILE (farm job scripts do that) this is the namespace Blender
    made for the file, and when the file ends Blender empties it in C (its ``__dict__``
    becomes NULL) while the alias keeps it alive: a ``getattr`` of any missing attribute on
    it then segfaults, as Blender 3.4's ``addon_utils.disable_all()`` does at exit (status
    139). Only processes that multiprocessing spawns read the alias; in Blender the add-on
    spawns none. The bpy module (``bpy.app.module``) runs no such files: its alias stays."""
    alias = sys.modules.get("__mp_main__")
    if alias is None:
        return
    gutted = getattr(alias, "__dict__", None) is None  # a --python file's namespace after the file ended
    blender_main = alias is sys.modules.get("__main__") and not getattr(bpy.app, "module", False)
    if gutted or blender_main:
        del sys.modules["__mp_main__"]


# --- Live Dream: the gpu module (no bgl: gone where Blender draws with Vulkan or Metal) -------------------------
# Checked in Debian's Blender 3.4.1 under Xvfb: GPUOffScreen.texture_color.read() gives a UBYTE Buffer that
# supports the buffer protocol, but 3.4 reports its [height, width, 4] memory with Fortran strides (1, h, h*w):
# bytes(memoryview) reorders it into stripes, tobytes(order="A") gives the memory as it is (rows of RGBA,
# bottom first), which is also right where the strides are C's. GPUTexture takes only a FLOAT Buffer as data;
# draw_view3d takes do_color_management by keyword (keyword-only from 4.x). bpy 5.0.1 as a module has no GPU
# (background): the same calls are what its documentation gives, untested here.

def capture_view(offscreen, scene, view_layer, space, region) -> bytes:
    """The 3D view as the artist sees it (its shading, colour managed),
    drawn into ``offscreen`` at its size: RGBA8 bytes, rows bottom first."""
    offscreen.draw_view3d(scene, view_layer, space, region, space.region_3d.view_matrix,
                          space.region_3d.window_matrix, do_color_management=True)
    return memoryview(offscreen.texture_color.read()).tobytes(order="A")


def new_offscreen(width: int, height: int):
    import gpu

    return gpu.types.GPUOffScreen(width, height)


def texture_from_floats(width: int, height: int, pixels: bytes):
    """A texture of float32 RGBA ``pixels`` (rows bottom first): 3.4 fills
    textures from FLOAT Buffers only; half floats keep linear light's darks."""
    import gpu

    data = gpu.types.Buffer("FLOAT", width * height * 4, memoryview(pixels).cast("f"))
    return gpu.types.GPUTexture((width, height), format="RGBA16F", data=data)


def draw_image(texture, width: int, height: int) -> None:
    """``texture`` (linear light) over the region, from a POST_PIXEL handler.
    The region draws into an sRGB framebuffer: what is drawn is taken as
    linear and encoded (measured in 3.4: a capture drawn back as it was
    came out brighter, 56 -> 130 of 255), so the dream, display-referred
    like the capture, comes as linear light and is shown as captured.
    gpu_extras' preset is in 3.4 and 5.0 alike (5.0's takes a texture in
    the framebuffer's own space by default) and picks the built-in shader
    each has (the 2D image shaders were renamed in 4.0)."""
    from gpu_extras.presets import draw_texture_2d

    draw_texture_2d(texture, (0, 0), width, height)

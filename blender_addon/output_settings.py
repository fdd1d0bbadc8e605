"""What a scene writes when it renders, as a plain value (no bpy import:
it reads and sets the scene it is given): captured before the add-on
points a render elsewhere, and given back after."""
from __future__ import annotations

from dataclasses import dataclass

from .render_thread import writes_scene

# Image settings copied between scenes, in the order Blender accepts them
# (the file format decides which modes and depths are valid).
FORMAT_FIELDS = ("media_type", "file_format", "color_mode", "color_depth", "compression", "quality",
                 "exr_codec", "tiff_codec", "use_preview", "color_management")
MOVIE_FORMATS = {"FFMPEG", "AVI_JPEG", "AVI_RAW"}
FLOAT_FORMATS = {"OPEN_EXR", "OPEN_EXR_MULTILAYER", "HDR"}
PASSES = ("use_pass_vector", "use_pass_cryptomatte_object")


@dataclass(frozen=True)
class OutputSettings:
    """What a scene writes when it renders: the output path, its extension
    rule, the image format and the passes we switch on, by view layer."""

    filepath: str
    use_file_extension: bool
    image: dict
    passes: dict

    @classmethod
    def capture(cls, scene) -> "OutputSettings":
        settings = scene.render.image_settings
        image = {name: getattr(settings, name) for name in FORMAT_FIELDS if hasattr(settings, name)}
        return cls(scene.render.filepath, scene.render.use_file_extension, image,
                   {layer.name: {name: getattr(layer, name) for name in PASSES} for layer in scene.view_layers})

    @property
    def is_exr(self) -> bool:
        return self.image["file_format"] in ("OPEN_EXR", "OPEN_EXR_MULTILAYER")

    @property
    def is_8bit(self) -> bool:
        """Whether the files hold 8-bit levels (what Blender dithers renders for)."""
        return self.image["file_format"] not in FLOAT_FORMATS and self.image.get("color_depth", "8") in ("8", "")

    @property
    def is_movie(self) -> bool:
        return self.image.get("media_type") == "VIDEO" or self.image["file_format"] in MOVIE_FORMATS

    @writes_scene  # also called from render handlers
    def apply(self, scene) -> None:
        scene.render.filepath = self.filepath
        scene.render.use_file_extension = self.use_file_extension
        self.apply_format(scene.render.image_settings)
        for layer in scene.view_layers:
            for name, value in self.passes.get(layer.name, {}).items():
                setattr(layer, name, value)

    def apply_format(self, image_settings) -> None:
        for name, value in self.image.items():
            try:
                setattr(image_settings, name, value)
            except TypeError:  # not valid for this format (Blender reset it): keep Blender's choice
                pass

"""Image files in and out: rasters (PNG 8/16-bit, JPEG, TIFF, WebP) and EXR,
including Blender's multilayer EXR with its Combined and Vector passes."""
from .images import FORMATS, Picture, decode_image, encode_image, read_image, write_image

__all__ = ["Picture", "decode_image", "encode_image", "read_image", "write_image", "FORMATS"]

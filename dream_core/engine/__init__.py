"""The render loop and its small, composable parts: objectives (what to
maximise), octaves (the image pyramid), tiling (bounded memory), transforms
(jitter), checks (typed shape errors), and the :class:`Dreamer` that runs
them on a device."""
from .device import image_tensor, resolve_device, tensor_pixels
from .dreamer import Dreamer, ObjectiveValue, cached_dreamer

__all__ = ["Dreamer", "ObjectiveValue", "cached_dreamer", "image_tensor", "resolve_device", "tensor_pixels"]

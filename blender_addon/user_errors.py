"""The add-on's one error type: a problem to report to the user in one sentence."""


class UserError(Exception):
    """A problem to report to the user in one sentence."""


class RenderStopped(UserError):
    """Blender's render of a frame ended without its image: Esc in the
    render window, or a render that failed (Blender's report says which;
    Python is told neither apart)."""

"""The add-on's one error type: a problem to report to the user in one sentence."""


class UserError(Exception):
    """A problem to report to the user in one sentence."""


class RenderStopped(UserError):
    """The user stopped Blender's render of a frame (Esc in the render window)."""

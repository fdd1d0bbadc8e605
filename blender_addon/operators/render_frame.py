import bpy

from .. import rendering, scene_frames, scene_state
from ..render_records import record_render
from ..shot.provenance import chain_settings
from .run_operator import DreamRunOperator


class DREAM_OT_render_frame(DreamRunOperator, bpy.types.Operator):
    """Render the current frame (or reuse the last render), dream it and show it in the Image Editor"""

    bl_idname = "dream.render_frame"
    bl_label = "Dream Frame"

    use_existing: bpy.props.BoolProperty(name="Use Existing Render", default=False,
                                         description="Dream the current Render Result instead of rendering again")

    def plans(self, context):
        scene = context.scene
        frame = scene.frame_current
        still = scene_frames.animation_plan(scene, range(frame, frame + 1), suffix="_still")[0]
        records = scene_frames.records(scene)
        for path in (still.source, still.target):  # a still is always made anew
            records.forget_file(path)
        if self.use_existing:  # the user's own last render, as it is: recorded as this scene's now
            rendering.save_render_result(scene, still.source)
            record_render(records, still.source, frame, scene_state.token(scene),
                          chain_settings(scene_frames.dream_params(scene)), scene_frames.dream_params(scene))
        return [still]

    def dreams_every_frame(self) -> bool:
        return True  # a still is always dreamed anew (see plans)

    def renders_again(self) -> bool:
        """A still is always rendered anew (without a word on why), unless the last render is the one to dream."""
        return not self.use_existing

    def finish(self, context, run):
        if run.targets():
            rendering.show_image(run.targets()[0])

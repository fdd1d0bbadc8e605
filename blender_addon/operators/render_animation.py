import bpy

from .. import compat, scene_frames, scene_state, sequencer
from ..command_line import run_frames
from .run_operator import DreamRunOperator


class DREAM_OT_render_animation(DreamRunOperator, bpy.types.Operator):
    """Render the scene's frame range, dream every frame and add the dreamed sequence to the Sequencer"""

    bl_idname = "dream.render_animation"
    bl_label = "Dream Animation"

    frame_start: bpy.props.IntProperty(name="Start", default=-1, description="First frame; -1: the scene's")
    frame_end: bpy.props.IntProperty(name="End", default=-1, description="Last frame; -1: the scene's")

    def plans(self, context):
        scene = context.scene
        frames = run_frames(self.frame_start, self.frame_end, scene.frame_start, scene.frame_end)
        if not compat.engine_has_vector_pass(scene):
            self.report({"WARNING"}, "this engine or motion blur leaves the Vector pass empty: "
                        "frames are dreamed without exact motion")
        return scene_frames.animation_plan(scene, frames)

    def finish(self, context, run):
        scene = context.scene
        targets = run.targets()
        if len(targets) == len(run.plans):
            with scene_state.own_changes(context):
                edit = sequencer.strip_scene(scene)
                strip = sequencer.place_strip(edit, f"Dream {scene.name}", targets, run.plans[0].frame,
                                              scene.dream.channel)
            message = (f"strip {strip.name!r} in scene {edit.name!r}, channel {strip.channel}, "
                       f"{len(targets)} frames from {run.plans[0].frame}")
            print(f"Dream Renders: {message}", flush=True)
            self.report({"INFO"}, message)

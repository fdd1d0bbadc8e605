import bpy

from .. import compat, scene_frames, sequencer
from .run_operator import DreamRunOperator


class DREAM_OT_process_strip(DreamRunOperator, bpy.types.Operator):
    """Dream every frame of the active image strip and place the result in the channel above, same timing"""

    bl_idname = "dream.process_strip"
    bl_label = "Dream Strip"
    render_missing = False
    colour_managed = False  # a strip's frames are display images already: dreamed as they are

    @classmethod
    def poll(cls, context):
        strip = compat.active_strip(context.scene)
        if strip is None or strip.type != "IMAGE":
            cls.poll_message_set("Select an image strip in the Sequencer")
            return False
        return True

    def plans(self, context):
        return scene_frames.strip_plan(context.scene, compat.active_strip(context.scene))

    def finish(self, context, run):
        scene = context.scene
        strip = compat.active_strip(scene)
        targets = run.targets()
        if strip is not None and len(targets) == len(run.plans):
            dreamed = sequencer.place_strip(scene, f"Dream {strip.name}", targets, int(strip.frame_start),
                                         minimum=strip.channel + 1)
            print(f"Dream Renders: strip {dreamed.name!r} on channel {dreamed.channel}", flush=True)

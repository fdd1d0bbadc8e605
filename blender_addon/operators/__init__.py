from .connection import DREAM_OT_test_connection
from .install import DREAM_OT_cancel_install, DREAM_OT_install_server
from .live_viewport import DREAM_OT_live_viewport
from .process_strip import DREAM_OT_process_strip
from .render_animation import DREAM_OT_render_animation
from .render_frame import DREAM_OT_render_frame
from .set_strengths import DREAM_OT_clear_strengths, DREAM_OT_only_selected

CLASSES = (DREAM_OT_render_frame, DREAM_OT_render_animation, DREAM_OT_process_strip, DREAM_OT_test_connection,
           DREAM_OT_only_selected, DREAM_OT_clear_strengths, DREAM_OT_install_server, DREAM_OT_cancel_install,
           DREAM_OT_live_viewport)

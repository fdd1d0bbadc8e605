// SPDX-License-Identifier: MIT
// Dream Renders for Flamenco: the shot's .blend, saved with Dream on Render
// on, is rendered in chunks; each worker's Blender dreams the frames it
// renders through its dream server (DREAM_SERVER_* on the worker). When the
// chunk before has finished, a chunk carries its dream on exactly (the frames
// one uninterrupted render makes); chunks rendered side by side start chains
// of their own, and the shot's Seam Fade (saved in the .blend) cross-fades
// the first frames of each into the chunk before's (whichever task ends
// second writes them). A pre-roll renders and dreams a few frames before a
// chunk, not written, so its own chain starts warm (optional: it costs those
// renders). The chunks are the shot planner's (dream_core.shot.planner.
// farm_tasks), checked against the same table (tests/cases/farm_tasks.json).
// Install: copy this file into the Manager's scripts folder (see
// docs/PIPELINE.md, "The Flamenco job type").

const JOB_TYPE = {
    label: "Dream Renders",
    description: "Render and dream a shot (Dream on Render) in chunks, each with a pre-roll",
    settings: [
        { key: "frames", type: "string", required: true,
          eval: "f'{C.scene.frame_start}-{C.scene.frame_end}'",
          evalInfo: { showLinkButton: true, description: "Scene frame range" },
          description: "Frames to render and dream, e.g. '1-240'" },
        { key: "chunk_size", type: "int32", default: 20, visible: "submission",
          description: "Frames per task; each task also dreams its pre-roll first" },
        { key: "preroll", type: "int32", default: 0, visible: "submission",
          description: "Frames before each chunk rendered and dreamed, not written, to warm its own chain" },
        { key: "addon", type: "string", default: "dream_renders", visible: "submission",
          description: "The add-on for --addons (Blender 4.2+ extensions: bl_ext.user_default.dream_renders)" },
        { key: "render_output_path", type: "string", subtype: "file_path", editable: false,
          eval: "f'{jobname}/dream/######'", description: "Where the dreamed frames are written" },

        // Automatically evaluated settings:
        { key: "blendfile", type: "string", required: true, visible: "web",
          description: "Path of the Blend file to render" },
        { key: "format", type: "string", required: true, visible: "web",
          eval: "C.scene.render.image_settings.file_format" },
        { key: "scene", type: "string", required: true, visible: "web", eval: "C.scene.name" },
    ],
};

function compileJob(job) {
    const settings = job.settings;
    if (settings.preroll < 0) {
        throw "preroll must be 0 or more frames";
    }
    const shotStart = firstFrame(settings.frames);
    for (const chunk of frameChunker(settings.frames, settings.chunk_size)) {
        job.addTask(chunkTask(settings, chunk, shotStart));
    }
}

// The first frame of a frame list such as "1-100" or "5,10-20".
function firstFrame(frames) {
    return Math.min(...frames.split(",").map((part) => parseInt(part.split("-")[0], 10)));
}

// "A-B" or "A" as [A, B].
function chunkBounds(chunk) {
    const [first, last] = chunk.split("-");
    return [parseInt(first, 10), parseInt(last === undefined ? first : last, 10)];
}

// One Blender render of frames A-preroll..B that writes dreams from A on.
function chunkTask(settings, chunk, shotStart) {
    const [first, last] = chunkBounds(chunk);
    const from = Math.max(shotStart, first - settings.preroll);
    const task = author.Task(`dream-${chunk}`, "blender");
    task.addCommand(author.Command("blender-render", {
        exe: "{blender}",
        exeArgs: "{blenderArgs}",
        argsBefore: [],
        blendfile: settings.blendfile,
        args: [
            "--addons", settings.addon,
            "--scene", settings.scene,
            "--render-output", settings.render_output_path,
            "--render-format", settings.format,
            "--frame-start", String(from),
            "--frame-end", String(last),
            "--render-anim",
            "--", "--dream-write-from", String(first),
        ],
    }));
    return task;
}

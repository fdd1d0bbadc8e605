// SPDX-License-Identifier: MIT
// Dream Renders for Flamenco: the shot's .blend, saved with Dream on Render
// on, is rendered in chunks; each worker's Blender dreams the frames it
// renders through its dream server (DREAM_SERVER_* on the worker). A chunk
// first renders and dreams a few frames before its own (its pre-roll, not
// written) so that its first frame starts from a warm chain; when the chunk
// before has already left its last frame on the shared storage, the chunk
// carries on from that frame instead; otherwise the last few pre-roll frames
// are cross-faded with the chunk before's dreams of them (whichever task ends
// second writes the blend): one pattern dissolves into the other. Install:
// copy this file into the Manager's scripts folder (see the README's "Render
// farms").

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
        { key: "preroll", type: "int32", default: 10, visible: "submission",
          description: "Frames before each chunk that are rendered and dreamed, not written, to warm its chain" },
        { key: "fade", type: "int32", default: 5, visible: "submission",
          description: "Pre-roll frames cross-faded into the chunk before's, hiding the seam (at most the pre-roll)" },
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
    if (settings.fade < 0 || settings.fade > settings.preroll) {
        throw "fade must be 0 to preroll frames";
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
    // every chunk gets the fade: the one before a seam blends it when it ends second
    const fadeArgs = settings.fade > 0 ? ["--dream-fade", String(settings.fade)] : [];
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
            "--", "--dream-write-from", String(first), ...fadeArgs,
        ],
    }));
    return task;
}

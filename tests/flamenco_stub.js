// A minimal stand-in for Flamenco's job compiler API (author.Task,
// author.Command, frameChunker, print, path), enough to run a job type's
// compileJob() under node and print the tasks it makes as JSON.
//   node flamenco_stub.js JOB_TYPE.js '{"frames": "1-45", ...settings}'
const fs = require("fs");
const vm = require("vm");
const nodePath = require("path");

function frameList(frames) {
    const list = [];
    for (const part of frames.split(",")) {
        const [first, last] = part.trim().split("-").map((n) => parseInt(n, 10));
        for (let frame = first; frame <= (Number.isNaN(last) || last === undefined ? first : last); frame++) {
            list.push(frame);
        }
    }
    return list;
}

// As Flamenco's: runs of consecutive frames, at most chunkSize long, as "A-B" (or "A").
function frameChunker(frames, chunkSize) {
    const chunks = [];
    let run = [];
    const flush = () => {
        if (run.length) chunks.push(run.length > 1 ? `${run[0]}-${run[run.length - 1]}` : `${run[0]}`);
        run = [];
    };
    for (const frame of frameList(frames)) {
        if (run.length && (frame !== run[run.length - 1] + 1 || run.length === chunkSize)) flush();
        run.push(frame);
    }
    flush();
    return chunks;
}

const author = {
    Task: (name, type) => ({ name, type, commands: [], addCommand(c) { this.commands.push(c); } }),
    Command: (name, parameters) => ({ name, parameters }),
};

const [script, settingsJson] = process.argv.slice(2);
const tasks = [];
const job = { settings: JSON.parse(settingsJson), addTask: (task) => tasks.push(task) };
const context = { author, frameChunker, print: () => {}, path: nodePath, job };
vm.createContext(context);
vm.runInContext(fs.readFileSync(script, "utf8") + "\ncompileJob(job);", context);
console.log(JSON.stringify(tasks.map((t) => ({ name: t.name, type: t.type, commands: t.commands }))));

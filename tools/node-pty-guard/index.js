"use strict";
// The cdktf CLI loads its terminal library (@cdktf/node-pty-prebuilt-multiarch) when it starts, and that
// library ships binaries only for the Node.js versions and platforms it was built for (up to Node.js 22).
// package.json's "overrides" puts this module in its place: where the real one has a binary this Node.js
// can load, it is the real one; where it has none (Node.js 24, or 22 on a platform without one; a binary
// npm compiled for another Node.js does not count), every `npx cdktf ...` stops with one line saying what
// to use instead, not the library's stack traces. README "Prerequisites".
const fs = require("fs");
const path = require("path");

const REAL = "@cdktf/node-pty-real";

function loads(file) {
  try {
    require(file);
    return true;
  } catch (error) {
    if (error.code === "ERR_DLOPEN_FAILED") {
      return false; // built for another Node.js ABI or platform
    }
    throw error;
  }
}

function hasBinary() {
  // The library's own answer to "is there a prebuilt binary for this Node.js ABI and platform?", or one
  // compiled from source at install time; either must load in this Node.js.
  const prebuilt = require(`${REAL}/lib/prebuild-file-path`);
  const root = path.dirname(require.resolve(`${REAL}/package.json`));
  const compiled = ["Release", "Debug"].map((mode) => path.join(root, "build", mode, "pty.node"));
  return [prebuilt.ptyPath, prebuilt.winPtyPath, ...compiled].some((file) => file && fs.existsSync(file) && loads(file));
}

if (!hasBinary()) {
  process.stderr.write(
    `cdktf: the cdktf CLI's terminal library has no binary for Node.js ${process.version} on ` +
      `${process.platform}-${process.arch}: use python -m ops synth|plan|deploy STACK (or Node.js 20/22 ` +
      "for npx cdktf; README, Prerequisites)\n",
  );
  process.exit(2);
}
module.exports = require(REAL);

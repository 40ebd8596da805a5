// @ts-check
// A stand-in for the bits of UXP's `uxp` module the panel's host/ code uses (opening a file by
// path). Not UXP: see photoshop.js beside it.
"use strict";

module.exports = {
  storage: {
    localFileSystem: {
      /** @param {string} url */
      async getEntryWithUrl(url) {
        if (!url.startsWith("file:")) throw new Error(`the stand-in opens file: URLs only, not ${url}`);
        return { isFile: true, nativePath: url.slice("file:".length) };
      },
    },
  },
};

// The panel's entry point (plain JavaScript, loaded by index.html): UXP provides `require`;
// everything else is compiled TypeScript in dist/ (src/).
const { entrypoints } = require("uxp");
const panel = require("./dist/ui/panel.js");

entrypoints.setup({
  panels: {
    kiln: {
      show() {
        panel.start(document);
      },
    },
  },
});

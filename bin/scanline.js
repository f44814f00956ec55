#!/usr/bin/env node
// The `scanline` command, and the one place that joins production and tooling: the production CLI (src/cli.ts:
// serve, help, usage errors, exit codes) runs every command line, given the tooling commands (tools/cli.ts:
// simulate, dataset, eval) and the simulated portals of `serve --demo N`. src/ never imports tools/.
// Both are TypeScript compiled to dist/ by `npm run build`.
Promise.all([import('../dist/src/cli.js'), import('../dist/tools/cli.js')])
  .then(([cli, tools]) => cli.main(process.argv.slice(2), { commands: tools.TOOL_COMMANDS, demo: tools.startDemoPortals }))
  .catch((err) => {
    if (err && err.code === 'ERR_MODULE_NOT_FOUND' && /dist\/(src|tools)\/cli\.js/.test(String(err.message))) {
      console.error('scanline: dist/ is missing; run `npm run build` first');
    } else {
      console.error(err);
    }
    process.exit(1);
  });

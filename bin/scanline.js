#!/usr/bin/env node
// The `scanline` command. The CLI lives in TypeScript (src/cli.ts) and is compiled to dist/ by `npm run build`.
import('../dist/src/cli.js')
  .then((cli) => cli.main(process.argv.slice(2)))
  .catch((err) => {
    if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/src/cli.js')) {
      console.error('scanline: dist/ is missing; run `npm run build` first');
    } else {
      console.error(err);
    }
    process.exit(1);
  });

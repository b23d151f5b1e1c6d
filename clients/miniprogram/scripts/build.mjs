// Builds the library: type check and .d.ts (tsc), CommonJS and ESM bundles (esbuild) in dist/, and
// the minified CommonJS bundle in miniprogram_dist/ that WeChat DevTools' "构建 npm" copies.
// Fails when the minified bundle is over the size budget (gzip) or would need anything at run time
// (a require() or import of a Node built-in or any other module).
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const BUDGET = 8192; // bytes, minified and gzipped

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);
rmSync('dist', { recursive: true, force: true });
rmSync('miniprogram_dist', { recursive: true, force: true });

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { stdio: 'inherit' });

const common = { entryPoints: ['src/index.ts'], bundle: true, platform: 'neutral', target: 'es2017', logLevel: 'warning' };
await build({ ...common, format: 'cjs', outfile: 'dist/index.cjs' });
await build({ ...common, format: 'esm', outfile: 'dist/index.mjs' });
await build({ ...common, format: 'cjs', minify: true, outfile: 'miniprogram_dist/index.js' });
const esm = await build({ ...common, format: 'esm', minify: true, write: false });

let failed = false;
for (const [name, text] of [
  ['miniprogram_dist/index.js (cjs, minified)', readFileSync('miniprogram_dist/index.js', 'utf8')],
  ['esm, minified', esm.outputFiles[0].text],
]) {
  const gz = gzipSync(text, { level: 9 }).length;
  console.log(`${name}: ${text.length} bytes, ${gz} bytes gzipped (budget ${BUDGET})`);
  if (gz > BUDGET) {
    console.error(`over the size budget: ${gz} > ${BUDGET} bytes gzipped`);
    failed = true;
  }
  if (/\brequire\(|\bimport\(|^import\b/m.test(text)) {
    console.error(`${name} loads another module at run time`);
    failed = true;
  }
}
if (failed) process.exit(1);

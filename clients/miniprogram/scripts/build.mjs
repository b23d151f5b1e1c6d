// Builds the library: type check and declarations (tsc; .d.ts for `require`, and the same as .d.mts
// importing each other as .mjs for `import`, so that TypeScript sees the ESM entry as ESM), CommonJS
// and ESM bundles (esbuild) in dist/, and the minified CommonJS bundle in miniprogram_dist/ that
// WeChat DevTools' "构建 npm" copies.
// Fails when the minified bundle is over the size budget (gzip) or would need anything at run time
// (a require() or import of a Node built-in or any other module).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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

const types = 'dist/types';
for (const name of readdirSync(types).filter((n) => n.endsWith('.d.ts'))) {
  const esmName = name.replace(/\.d\.ts$/, '.d.mts');
  const text = readFileSync(join(types, name), 'utf8').replace(
    /(\bfrom\s*|\bimport\s*\(\s*)(['"])(\.\.?\/[^'"]*)\2/g,
    (_, keyword, quote, path) => {
      if (!existsSync(join(types, `${path}.d.ts`))) throw new Error(`${name}: cannot map ${path} to a .d.mts`);
      return `${keyword}${quote}${path}.mjs${quote}`;
    },
  );
  writeFileSync(join(types, esmName), text);
}

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

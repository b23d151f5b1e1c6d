// The package as `npm pack` makes it from a clean checkout (a copy of the sources without dist/ and
// miniprogram_dist/): the prepack build runs, the tarball has every file package.json points to and
// the license texts, and arethetypeswrong finds each entry point's types in the module format the
// entry loads as (CommonJS for `require`, ESM for `import`).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
const BUILT = new Set(['dist', 'miniprogram_dist', 'node_modules']);

let dir;
let packed;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'wxlogin-pack-'));
  cpSync(pkgDir, dir, {
    recursive: true,
    filter: (src) => src === pkgDir || (!BUILT.has(basename(src)) && !src.endsWith('.tgz')),
  });
  symlinkSync(join(pkgDir, 'node_modules'), join(dir, 'node_modules'), 'dir');
  // The prepack build logs to stdout before npm's JSON.
  const out = execFileSync('npm', ['pack', '--dry-run', '--json'], { cwd: dir, encoding: 'utf8' });
  const [report] = JSON.parse(out.slice(out.search(/^\[/m)));
  packed = new Set(report.files.map((f) => f.path));
});
after(() => dir && rmSync(dir, { recursive: true, force: true }));

/** Every file package.json names: main, module, types, miniprogram's entry and the exports targets. */
function named(value, out = []) {
  if (typeof value === 'string') out.push(value.replace(/^\.\//, ''));
  else if (value && typeof value === 'object') for (const v of Object.values(value)) named(v, out);
  return out;
}

test('npm pack on a clean checkout builds the package and ships every file package.json names', () => {
  const files = [...named([pkg.main, pkg.module, pkg.types, pkg.exports]), `${pkg.miniprogram}/index.js`];
  for (const file of files) assert.ok(packed.has(file), `${file} is not in the package: ${[...packed].join(', ')}`);
  assert.ok(packed.has('miniprogram_dist/index.js'));
  for (const file of packed) assert.doesNotMatch(file, /^(test|node_modules|scripts)\//);
});

test('the package ships the texts of both licenses it is offered under', () => {
  assert.equal(pkg.license, 'MIT OR Apache-2.0');
  assert.ok(packed.has('LICENSE-MIT'), 'LICENSE-MIT is not in the package');
  assert.ok(packed.has('LICENSE-APACHE'), 'LICENSE-APACHE is not in the package');
  assert.match(readFileSync(join(pkgDir, 'LICENSE-MIT'), 'utf8'), /^MIT License\n\nCopyright \(c\) .+\n\nPermission is hereby granted, free of charge/);
  const apache = readFileSync(join(pkgDir, 'LICENSE-APACHE'), 'utf8');
  assert.match(apache, /Apache License\s+Version 2\.0, January 2004/);
  assert.match(apache, /END OF TERMS AND CONDITIONS/);
});

test('arethetypeswrong: the types of require and import resolve as CommonJS and ESM', () => {
  const attw = join(pkgDir, 'node_modules', '.bin', 'attw');
  let out;
  try {
    out = execFileSync(attw, ['--pack', '.', '--format', 'ascii'], { cwd: dir, encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    assert.fail(`attw --pack . found problems:\n${e.stdout}${e.stderr}`);
  }
  assert.match(out, /No problems found/);
});

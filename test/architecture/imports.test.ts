/**
 * The shape of the code, held by a test: every folder under src/ is a stage or a shared piece with one public door
 * (its index.ts); another folder imports only that door; no two folders import each other, directly or round a
 * cycle; production (src/) never imports tooling (tools/: simulator, dataset export, eval).
 * The same holds among tools/' own folders, and tools/ reaches production only through the same doors: a folder's
 * index.ts or a file directly under src/ (main.ts for startGateway, cli.ts for the command plumbing).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function tsFiles(dir: string): string[] {
  let out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out = out.concat(tsFiles(path));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

interface Edge {
  from: string;
  to: string;
}

/** Relative imports (static, dynamic and re-exports) of every file under `dir`, resolved to files. */
function importsOf(dir: string): Edge[] {
  const edges: Edge[] = [];
  for (const file of tsFiles(dir)) {
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    for (const ref of info.importedFiles) {
      if (!ref.fileName.startsWith('.')) continue;
      edges.push({ from: relative(root, file), to: relative(root, resolve(dirname(file), ref.fileName.replace(/\.js$/, '.ts'))) });
    }
  }
  return edges;
}

/**
 * `src/ingest/active-scan.ts` → `src/ingest`, `tools/eval/scoring.ts` → `tools/eval`; a file directly under src/ or
 * tools/ (main.ts, cli.ts) is its own unit.
 */
function folderOf(path: string): string {
  const parts = path.split('/');
  return parts.length > 2 ? parts.slice(0, 2).join('/') : path;
}

/** Imports from one unit into another that name a file inside a folder other than its index.ts. */
function bypasses(edges: Edge[]): string[] {
  return edges
    .filter((e) => folderOf(e.from) !== folderOf(e.to) && e.to.split('/').length > 2 && !e.to.endsWith('/index.ts'))
    .map((e) => `${e.from} -> ${e.to}`);
}

/** Cycles of the unit graph, each as `a -> b -> ... -> a`. */
function cycles(edges: Edge[]): string[] {
  const graph = new Map<string, Set<string>>();
  for (const e of edges) {
    const a = folderOf(e.from);
    const b = folderOf(e.to);
    if (a === b) continue;
    if (!graph.has(a)) graph.set(a, new Set());
    graph.get(a)!.add(b);
  }
  const found: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') found.push([...stack.slice(stack.indexOf(next)), next].join(' -> '));
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of [...graph.keys()].sort()) if (!state.has(node)) visit(node);
  return found;
}

const production = importsOf(join(root, 'src'));
const tooling = importsOf(join(root, 'tools'));
const toolingOwn = tooling.filter((e) => e.to.startsWith('tools/'));

describe('import graph of production (src/)', () => {
  it('has no cross-folder import that bypasses the folder index.ts', () => {
    expect(bypasses(production)).toEqual([]);
  });

  it('has no cycle between folders', () => {
    expect(cycles(production)).toEqual([]);
  });

  it('keeps production apart from tooling: nothing under src/ imports tools/, test/ or bench/', () => {
    const outside = production.filter((e) => !e.to.startsWith('src/')).map((e) => `${e.from} -> ${e.to}`);
    expect(outside).toEqual([]);
  });
});

describe('import graph of tooling (tools/)', () => {
  it('finds the tools and their imports', () => {
    expect(new Set(tooling.map((e) => folderOf(e.from)))).toEqual(new Set(['tools/cli.ts', 'tools/dataset', 'tools/eval', 'tools/fit', 'tools/simulator']));
  });

  it("has no import between tools' folders that bypasses the folder index.ts", () => {
    expect(bypasses(toolingOwn)).toEqual([]);
  });

  it("has no cycle between tools' folders", () => {
    expect(cycles(toolingOwn)).toEqual([]);
  });

  it('reaches production only through a folder index.ts or a file directly under src/ (main.ts, cli.ts)', () => {
    const bypass = tooling.filter((e) => e.to.startsWith('src/')).filter((e) => e.to.split('/').length > 2 && !e.to.endsWith('/index.ts'));
    expect(bypass.map((e) => `${e.from} -> ${e.to}`)).toEqual([]);
  });

  it('imports nothing from test/ or bench/', () => {
    const outside = tooling.filter((e) => !e.to.startsWith('src/') && !e.to.startsWith('tools/')).map((e) => `${e.from} -> ${e.to}`);
    expect(outside).toEqual([]);
  });
});

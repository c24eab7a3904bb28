import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SHARED_SRC = fileURLToPath(new URL('../../../../../packages/shared/src/', import.meta.url));

/**
 * The modules `entry` loads when it runs, and theirs, from its static imports (`import type` is
 * erased; with verbatimModuleSyntax every other import stays): files of this repository by path,
 * packages by name. `@longhaul/shared/<subpath>` is the shared package's `src/<subpath>.ts`.
 */
function runtimeImports(entry: URL): { files: string[]; packages: Set<string> } {
  const files: string[] = [];
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.includes(file)) return;
    files.push(file);
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest);
    for (const statement of source.statements) {
      const isImport = ts.isImportDeclaration(statement) && !statement.importClause?.isTypeOnly;
      const isReExport = ts.isExportDeclaration(statement) && !statement.isTypeOnly && statement.moduleSpecifier;
      if (!isImport && !isReExport) continue;
      const specifier = ((statement as ts.ImportDeclaration).moduleSpecifier as ts.StringLiteral).text;
      if (specifier.startsWith('.')) visit(fileURLToPath(new URL(specifier, `file://${file}`)));
      else if (specifier.startsWith('@longhaul/shared/')) visit(`${SHARED_SRC}${specifier.slice(17)}.ts`);
      else packages.add(specifier);
    }
  };
  visit(fileURLToPath(entry));
  return { files, packages };
}

describe('the profile thread', () => {
  it('when a profile thread starts, then it loads neither zod nor the shared package as a whole', () => {
    // Each new thread loads its modules afresh; zod alone (the API contracts' schemas) took about
    // 80 ms of a fresh thread's start, for constants the profiler needs (dataset-profile-limits.ts).
    const { files, packages } = runtimeImports(new URL('./profile-thread.ts', import.meta.url));
    expect(files.some((f) => f.endsWith('column-stats.ts'))).toBe(true);
    expect([...packages].filter((p) => p === 'zod' || p === '@longhaul/shared')).toEqual([]);
  });
});

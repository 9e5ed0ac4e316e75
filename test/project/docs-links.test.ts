/**
 * The README and the pages under docs/ hold together: every relative link reaches a file that
 * exists and, when it names one, a heading of that file (GitHub's anchors); every page is in the
 * README's index; and every figure quoted from BENCHMARKS.md (a link to it whose text holds a
 * number, titled with the figure's name in the bar) is the one BENCHMARKS.md records.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');
const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** Markdown without its fenced blocks and inline code, where brackets are not links. */
function prose(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```$/gm, '').replace(/`[^`\n]*`/g, '');
}

interface Link {
  readonly page: string;
  readonly text: string;
  readonly target: string;
  readonly title: string | undefined;
}

function links(page: string): Link[] {
  const found: Link[] = [];
  for (const m of prose(readFileSync(join(root, page), 'utf8')).matchAll(/\[([^\]]*)\]\(([^)\s]+)(?: "([^"]*)")?\)/g)) {
    found.push({ page, text: m[1] ?? '', target: m[2] ?? '', title: m[3] });
  }
  return found;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, each space a hyphen. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\p{M} _-]/gu, '')
    .replace(/ /g, '-');
}

/** The anchors a markdown file's headings get, repeated ones numbered as GitHub numbers them. */
function anchors(file: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const m of readFileSync(file, 'utf8').replace(/^```[\s\S]*?^```$/gm, '').matchAll(/^#{1,6} (.+)$/gm)) {
    const base = slug(m[1] ?? '');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    result.add(n === 0 ? base : `${base}-${String(n)}`);
  }
  return result;
}

const relativeLinks = pages.flatMap(links).filter((l) => !/^[a-z][a-z0-9+.-]*:/i.test(l.target));

describe('links in README.md and docs/', () => {
  it('finds the links it checks', () => {
    expect(relativeLinks.filter((l) => l.page === 'README.md').length).toBeGreaterThan(10);
  });

  it('every relative link reaches an existing file, and a heading of it where it names one', () => {
    const broken: string[] = [];
    for (const link of relativeLinks) {
      const [path = '', anchor] = link.target.split('#');
      const file = path === '' ? join(root, link.page) : join(root, dirname(link.page), path);
      if (!existsSync(file)) broken.push(`${link.page}: ${link.target} (no ${relative(root, file)})`);
      else if (anchor !== undefined && !anchors(file).has(anchor)) broken.push(`${link.page}: ${link.target} (no such heading in ${relative(root, file)})`);
    }
    expect(broken).toEqual([]);
  });

  it("every page under docs/ is in the README's index", () => {
    const linked = new Set(links('README.md').map((l) => l.target.split('#')[0]));
    expect(pages.filter((p) => p !== 'README.md' && !linked.has(p))).toEqual([]);
  });
});

/** The bar's table in BENCHMARKS.md: figure -> measured, as recorded. */
function bar(): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of readFileSync(join(root, 'BENCHMARKS.md'), 'utf8').split('\n')) {
    const cells = line.split(' | ');
    if (line.startsWith('| ') && cells.length >= 5) rows.set((cells[0] ?? '').slice(2), cells[1] ?? '');
  }
  return rows;
}

describe('figures quoted from BENCHMARKS.md', () => {
  const quoted = pages.flatMap(links).filter((l) => /(^|\/)BENCHMARKS\.md(#|$)/.test(l.target) && /\d/.test(l.text));

  it('are quoted (the README quotes some)', () => {
    expect(quoted.filter((l) => l.page === 'README.md').length).toBeGreaterThan(0);
  });

  it('each name their figure and equal what BENCHMARKS.md records for it', () => {
    const recorded = bar();
    const wrong: string[] = [];
    for (const link of quoted) {
      const measured = link.title === undefined ? undefined : recorded.get(link.title);
      if (measured === undefined) wrong.push(`${link.page}: [${link.text}] has no title naming a figure of the bar`);
      else if (measured !== link.text && !measured.startsWith(`${link.text} (`)) wrong.push(`${link.page}: [${link.text}] but BENCHMARKS.md records "${measured}" for "${link.title ?? ''}"`);
    }
    expect(wrong).toEqual([]);
  });
});

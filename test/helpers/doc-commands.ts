// The shell commands of the project's Markdown: every fenced `sh`/`bash`/`console` block of README.md and docs/*.md,
// and every inline code span that starts with a command the docs teach (`docker ...`, `tsmacvlan ...`, `npm ...`),
// split into simple commands and words the way a POSIX shell would for the constructs the docs use (quotes, `\`
// continuations, `$(...)`, `&&`, `||`, `;`, `|`, comments, `VAR=value` prefixes). test/unit/docs.test.ts checks each.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface DocCommand {
  file: string; // relative to the repository
  line: number; // 1-based, where the command (or its block line) starts
  /** The command's words, quotes removed; `$(...)` words keep their text. */
  words: string[];
  /** `VAR=value` assignments before the command word (or on their own: then words is empty). */
  env: string[];
  /** The comment at the end of the command's line, if any (e.g. `# refused`). */
  comment: string;
  source: string; // the logical line it came from, for messages
}

export interface CodeBlock {
  file: string;
  line: number; // of the first content line
  lang: string;
  text: string;
}

export const SHELL_LANGS = ['sh', 'bash', 'shell', 'console'];
/** Inline code spans that are commands (rather than names, values or output). */
const INLINE_COMMAND = /^(docker|tsmacvlan|npm|bash|systemctl|journalctl|modprobe|ip) [^`]*$/;

export function markdownFiles(repo: string): string[] {
  const docs = readdirSync(join(repo, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`);
  return ['README.md', ...docs];
}

export function codeBlocks(file: string, text: string): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(```+)\s*([\w-]*)/.exec(lines[i]);
    if (!open) continue;
    const [, indent, fence, lang] = open;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !lines[j].trimStart().startsWith(fence); j++) body.push(lines[j].slice(indent.length));
    blocks.push({ file, line: i + 2, lang, text: body.join('\n') });
    i = j;
  }
  return blocks;
}

/** Inline code spans outside fenced blocks that read as commands, with their line numbers. */
export function inlineCommands(text: string): { line: number; text: string }[] {
  const found: { line: number; text: string }[] = [];
  let fenced = false;
  text.split('\n').forEach((line, i) => {
    if (/^\s*```/.test(line)) fenced = !fenced;
    if (fenced) return;
    for (const m of line.matchAll(/`([^`]+)`/g)) if (INLINE_COMMAND.test(m[1])) found.push({ line: i + 1, text: m[1] });
  });
  return found;
}

/** A block's logical lines (continuations joined) with their starting line; console blocks keep only prompts. */
export function logicalLines(block: CodeBlock): { line: number; text: string }[] {
  const physical = block.text.split('\n');
  const out: { line: number; text: string }[] = [];
  for (let i = 0; i < physical.length; i++) {
    let text = physical[i];
    const start = block.line + i;
    if (block.lang === 'console') {
      const prompt = /^[$#] (.*)$/.exec(text);
      if (!prompt) continue; // output
      text = prompt[1];
    }
    while (text.endsWith('\\') && i + 1 < physical.length) text = text.slice(0, -1) + ' ' + physical[++i].trimStart();
    if (text.trim()) out.push({ line: start, text });
  }
  return out;
}

interface Lexed {
  commands: { words: string[]; raw: string[] }[];
  comment: string;
  substitutions: string[]; // the text inside each $(...)
}

/** Splits one logical line into simple commands. Throws on what it cannot read (an unclosed quote). */
export function lex(line: string): Lexed {
  const commands: { words: string[]; raw: string[] }[] = [];
  const substitutions: string[] = [];
  let words: string[] = [];
  let raw: string[] = [];
  let word: string | undefined;
  let rawWord = '';
  let comment = '';
  const endWord = () => {
    if (word !== undefined) (words.push(word), raw.push(rawWord));
    word = undefined;
    rawWord = '';
  };
  const endCommand = () => {
    endWord();
    if (words.length) commands.push({ words, raw });
    words = [];
    raw = [];
  };
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === ' ' || c === '\t') {
      endWord();
    } else if (c === '#' && word === undefined) {
      comment = line.slice(i + 1).trim();
      break;
    } else if (c === ';' || c === '|' || c === '&') {
      endCommand();
      if (line[i + 1] === c) i++;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unclosed ' in: ${line}`);
      word = (word ?? '') + line.slice(i + 1, end);
      rawWord += line.slice(i, end + 1);
      i = end;
    } else if (c === '"' || (c === '$' && line[i + 1] === '(')) {
      const end = c === '"' ? closingQuote(line, i) : closingParen(line, i + 1);
      const inner = line.slice(c === '"' ? i + 1 : i, c === '"' ? end : end + 1);
      substitutions.push(...topLevelSubstitutions(inner));
      word = (word ?? '') + inner;
      rawWord += line.slice(i, end + 1);
      i = end;
    } else if (c === '\\' && i + 1 < line.length) {
      word = (word ?? '') + line[i + 1];
      rawWord += line.slice(i, i + 2);
      i++;
    } else {
      word = (word ?? '') + c;
      rawWord += c;
    }
  }
  endCommand();
  return { commands, comment, substitutions };
}

function closingQuote(line: string, open: number): number {
  for (let i = open + 1; i < line.length; i++) {
    if (line[i] === '\\') i++;
    else if (line[i] === '$' && line[i + 1] === '(') i = closingParen(line, i + 1);
    else if (line[i] === '"') return i;
  }
  throw new Error(`unclosed " in: ${line}`);
}

function closingParen(line: string, open: number): number {
  let depth = 0;
  for (let i = open; i < line.length; i++) {
    if (line[i] === "'") i = line.indexOf("'", i + 1);
    else if (line[i] === '(') depth++;
    else if (line[i] === ')' && --depth === 0) return i;
    if (i < 0) break;
  }
  throw new Error(`unclosed $( in: ${line}`);
}

/** The command texts of the `$(...)` in `text`, not those nested in them (they are found when those are read). */
function topLevelSubstitutions(text: string): string[] {
  const found: string[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '$' && text[i + 1] === '(') {
      const end = closingParen(text, i + 1);
      found.push(text.slice(i + 2, end));
      i = end;
    }
  }
  return found;
}

const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*=/;

/** Every simple command of one logical line, `$(...)` contents included, as DocCommands. */
export function commandsOf(file: string, line: number, text: string): DocCommand[] {
  const lexed = lex(text);
  const out: DocCommand[] = [];
  for (const { words } of lexed.commands) {
    let k = 0;
    while (k < words.length && ASSIGNMENT.test(words[k])) k++;
    out.push({ file, line, words: words.slice(k), env: words.slice(0, k), comment: lexed.comment, source: text });
  }
  for (const inner of lexed.substitutions) out.push(...commandsOf(file, line, inner));
  return out;
}

/** Every command of every Markdown file of the repository. */
export function docCommands(repo: string): DocCommand[] {
  const out: DocCommand[] = [];
  for (const file of markdownFiles(repo)) {
    const text = readFileSync(join(repo, file), 'utf8');
    for (const block of codeBlocks(file, text)) {
      if (!SHELL_LANGS.includes(block.lang)) continue;
      for (const { line, text: logical } of logicalLines(block)) out.push(...commandsOf(file, line, logical));
    }
    for (const { line, text: inline } of inlineCommands(text)) out.push(...commandsOf(file, line, inline));
  }
  return out;
}

/** The fenced blocks under a heading of a Markdown file (up to the next heading of the same or a higher level). */
export function blocksUnder(file: string, text: string, heading: string): CodeBlock[] {
  const headings: { line: number; level: number; title: string }[] = [];
  let fenced = false;
  text.split('\n').forEach((l, i) => {
    if (/^\s*```/.test(l)) fenced = !fenced;
    const m = /^(#+) (.*)$/.exec(l);
    if (m && !fenced) headings.push({ line: i + 1, level: m[1].length, title: m[2] });
  });
  const at = headings.findIndex((h) => h.title === heading);
  if (at < 0) throw new Error(`${file} has no heading '${heading}'`);
  const next = headings.slice(at + 1).find((h) => h.level <= headings[at].level);
  const end = next?.line ?? Infinity;
  return codeBlocks(file, text).filter((b) => b.line > headings[at].line && b.line < end);
}

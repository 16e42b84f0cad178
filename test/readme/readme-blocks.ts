/**
 * The README's walkthrough as runnable blocks, and one bash session that runs them in order.
 *
 * A fenced block may be preceded by one directive comment:
 *   <!-- readme-test: skip (why) -->   not run (the test does it its own way, e.g. `npm start`)
 *   <!-- readme-test: step=NAME -->    run; the test checks its outcome under NAME
 *   <!-- readme-test: file=NAME -->    not run: written to NAME in the working directory
 * A `sh` block without a directive runs too; any other block needs one, so nothing is dropped silently.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ReadmeBlock {
  readonly line: number;
  readonly lang: string;
  readonly code: string;
  readonly action: { readonly kind: 'run'; readonly step?: string } | { readonly kind: 'skip' } | { readonly kind: 'file'; readonly name: string };
}

const DIRECTIVE = /^<!-- readme-test: (?:(skip)\b.*|step=([\w-]+)|file=([\w.-]+)) -->$/;

/** The fenced blocks of the `## <heading>...` section of the markdown file at `path`, in order. */
export function sectionBlocks(path: string, heading: string): ReadmeBlock[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  const start = lines.findIndex((line) => line.startsWith(`## ${heading}`));
  if (start < 0) throw new Error(`${path} has no "## ${heading}" section`);
  const blocks: ReadmeBlock[] = [];
  let directive: ReadmeBlock['action'] | undefined;
  for (let i = start + 1; i < lines.length && !lines[i]!.startsWith('## '); i++) {
    const line = lines[i]!;
    if (line.startsWith('<!-- readme-test:')) {
      const match = DIRECTIVE.exec(line);
      if (!match) throw new Error(`${path}:${i + 1}: unknown directive ${line}`);
      directive = match[1] ? { kind: 'skip' } : match[2] ? { kind: 'run', step: match[2] } : { kind: 'file', name: match[3]! };
      continue;
    }
    const fence = /^```(\w*)$/.exec(line);
    if (!fence) {
      if (directive && line.trim() !== '') throw new Error(`${path}:${i + 1}: a readme-test directive must come right before a fence`);
      continue;
    }
    const end = lines.indexOf('```', i + 1);
    if (end < 0) throw new Error(`${path}:${i + 1}: unclosed fence`);
    const lang = fence[1]!;
    const action = directive ?? (lang === 'sh' ? { kind: 'run' as const } : undefined);
    if (!action) throw new Error(`${path}:${i + 1}: a \`\`\`${lang} block in the walkthrough needs a readme-test directive`);
    if (action.kind === 'run' && lang !== 'sh') throw new Error(`${path}:${i + 1}: only sh blocks can run`);
    blocks.push({ line: i + 1, lang, code: lines.slice(i + 1, end).join('\n'), action });
    directive = undefined;
    i = end;
  }
  return blocks;
}

/**
 * One `bash` process (`set -euo pipefail`) in which blocks run one after another, so that shell
 * variables carry over as they do in a reader's terminal. A failing command ends the shell, and
 * run() rejects with the block and its output.
 */
export class ShellSession {
  readonly #shell: ChildProcess;
  readonly #dir: string;
  #stdout = '';
  #exited: Promise<number | null>;
  #count = 0;

  constructor(options: { cwd: string; env: NodeJS.ProcessEnv; scriptDir: string }) {
    this.#dir = options.scriptDir;
    // Its own process group, so that a hung block can be killed with everything it started.
    this.#shell = spawn('bash', ['--noprofile', '--norc'], { cwd: options.cwd, env: options.env, stdio: ['pipe', 'pipe', 'inherit'], detached: true });
    this.#shell.stdout!.setEncoding('utf8').on('data', (chunk: string) => (this.#stdout += chunk));
    this.#exited = new Promise((resolve) => this.#shell.once('close', (code) => resolve(code)));
    this.#shell.stdin!.write('set -euo pipefail\n');
  }

  /** Runs `code` as the next block; resolves with what it printed (stdout and stderr together). */
  async run(code: string, timeoutMs: number): Promise<string> {
    const n = ++this.#count;
    const script = join(this.#dir, `block-${n}.sh`);
    const output = join(this.#dir, `block-${n}.out`);
    writeFileSync(script, `${code}\n`);
    const done = `readme-test: block ${n} done`;
    this.#shell.stdin!.write(`source '${script}' > '${output}' 2>&1 < /dev/null\necho '${done}'\n`);
    const printed = () => readFileSync(output, 'utf8');
    const ended = await new Promise<'done' | 'exited' | 'timeout'>((resolve) => {
      const poll = setInterval(() => this.#stdout.includes(done) && finish('done'), 50);
      const timer = setTimeout(() => finish('timeout'), timeoutMs);
      void this.#exited.then(() => finish('exited'));
      const finish = (how: 'done' | 'exited' | 'timeout') => {
        clearInterval(poll);
        clearTimeout(timer);
        resolve(how);
      };
    });
    if (ended === 'done') return printed();
    if (ended === 'timeout') this.kill();
    const how = ended === 'timeout' ? `did not finish within ${timeoutMs} ms` : `failed (bash exited ${await this.#exited})`;
    throw new Error(`README block ${how}:\n--- block\n${code}\n--- output\n${printed()}`);
  }

  kill(): void {
    if (this.#shell.exitCode === null && this.#shell.pid !== undefined) {
      try {
        process.kill(-this.#shell.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  async close(): Promise<void> {
    if (this.#shell.exitCode === null) this.#shell.stdin!.end('exit 0\n');
    const timer = setTimeout(() => this.kill(), 10_000);
    await this.#exited;
    clearTimeout(timer);
  }
}

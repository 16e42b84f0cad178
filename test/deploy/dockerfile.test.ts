/**
 * The Dockerfile, checked statically (no Docker engine runs here, so it is never built by the
 * tests): parsed with dockerfile-ast, the runtime stage must be Node 22, run as a non-root user,
 * carry no build toolchain and get the compiled modules from the build stage.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Copy, DockerfileParser, type Env, type Instruction } from 'dockerfile-ast';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/cli.js';
import { readCompose, tesseraService } from '../support/compose.js';

const NODE_IMAGE = 'node:22-bookworm-slim';
const TOOLCHAIN = ['build-essential', 'python3', 'gcc', 'g++', 'make', 'node-gyp'];

interface Stage {
  readonly name: string | null;
  readonly from: string;
  readonly instructions: Instruction[];
}

/** The Dockerfile's stages, each with the instructions that follow its FROM. */
function stages(): Stage[] {
  const dockerfile = DockerfileParser.parse(readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8'));
  const result: { name: string | null; from: string; instructions: Instruction[] }[] = [];
  for (const instruction of dockerfile.getInstructions()) {
    if (instruction.getKeyword() === 'FROM') {
      const from = dockerfile.getFROMs().find((candidate) => candidate.getRange().start.line === instruction.getRange().start.line)!;
      result.push({ name: from.getBuildStage(), from: from.getImage() ?? '', instructions: [] });
    } else {
      result.at(-1)?.instructions.push(instruction);
    }
  }
  return result;
}

const text = (instruction: Instruction) => instruction.getArgumentsContent() ?? '';
const ofKind = (stage: Stage, keyword: string) => stage.instructions.filter((instruction) => instruction.getKeyword() === keyword);
/** Debian packages an `apt-get install` in the stage names. */
const installed = (stage: Stage) =>
  ofKind(stage, 'RUN').flatMap((run) => [...text(run).matchAll(/apt-get install ([^&;|]*)/g)].flatMap((match) => match[1]!.split(/\s+/).filter((word) => word && !word.startsWith('-'))));

describe('Dockerfile', () => {
  const all = stages();
  const build = all[0]!;
  const runtime = all.at(-1)!;

  it('is multi-stage and built on Node 22 throughout', () => {
    expect(all.length).toBeGreaterThanOrEqual(2);
    for (const stage of all) expect(stage.from).toBe(NODE_IMAGE);
  });

  it('builds the native modules and dist/ in the build stage, with the toolchain', () => {
    expect(installed(build)).toEqual(expect.arrayContaining(['build-essential', 'python3']));
    expect(ofKind(build, 'RUN').some((run) => /\bnpm ci\b/.test(text(run)))).toBe(true);
  });

  it('runtime stage: no toolchain, no npm install; node_modules and dist copied from the build stage', () => {
    for (const tool of TOOLCHAIN) expect(installed(runtime)).not.toContain(tool);
    for (const run of ofKind(runtime, 'RUN')) expect(text(run)).not.toMatch(/\bnpm (ci|install|i|rebuild)\b|node-gyp/);
    const copied = ofKind(runtime, 'COPY').map((copy) => `${(copy as Copy).getFromFlag()?.getValue()}: ${text(copy)}`);
    expect(copied).toEqual(expect.arrayContaining([`${build.name}: /app/node_modules ./node_modules`, `${build.name}: /app/dist ./dist`]));
  });

  it('runtime stage: keeps SoftHSM2 for the embedded PKCS#11 key store', () => {
    expect(installed(runtime)).toContain('softhsm2');
  });

  it('runtime stage: runs as a non-root user', () => {
    const users = ofKind(runtime, 'USER').map(text);
    expect(users.length).toBeGreaterThan(0);
    const user = users.at(-1)!.split(':')[0]!;
    expect(['root', '0']).not.toContain(user);
    // The user is created in this stage (the base image has no such user otherwise).
    expect(ofKind(runtime, 'RUN').some((run) => new RegExp(`useradd\\b.*\\b${user}\\b`).test(text(run)))).toBe(true);
    // Nothing after USER runs as root again.
    const last = runtime.instructions.map((instruction) => instruction.getKeyword()).lastIndexOf('USER');
    expect(runtime.instructions.slice(last + 1).map((instruction) => instruction.getKeyword())).not.toContain('RUN');
  });

  it('puts the package\'s `tessera` bin on PATH, as the CMD and docker-compose.yml call it', () => {
    const bin = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { bin: { tessera: string } }).bin.tessera;
    expect(ofKind(runtime, 'RUN').some((run) => text(run).includes(`ln -s /app/${bin} /usr/local/bin/tessera`))).toBe(true);
    expect(ofKind(build, 'RUN').some((run) => text(run).includes(`chmod 0755 ${bin}`))).toBe(true);
    expect(ofKind(runtime, 'CMD').map(text).join(' ')).toContain('tessera serve');
  });

  it('keeps its data in the volume docker-compose.yml mounts for init and the replicas', () => {
    const settings = new Map(ofKind(runtime, 'ENV').flatMap((env) => (env as Env).getProperties().map((property) => [property.getName(), property.getValue()] as const)));
    const dataDir = settings.get('TESSERA_DATA_DIR');
    expect(ofKind(runtime, 'VOLUME').map(text)).toEqual([dataDir]);
    const [, init] = tesseraService(readCompose(), 'init');
    expect(init.volumes?.map((volume) => volume.split(':')[1])).toEqual([dataDir]);
  });

  it('keeps host build output out of the context (.dockerignore)', () => {
    const ignored = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8').split('\n');
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', 'dist']));
  });
});

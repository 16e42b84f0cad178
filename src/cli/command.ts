import { Command, type Option } from 'commander';

/**
 * commander's Command with two checks in the order a user needs them:
 * - a required option is checked after unknown options and arguments (commander checks it first),
 *   so `--rol readonly` is reported as an unknown option with a suggestion, not as a missing `--role`;
 * - a word that a command with a default subcommand (`tessera lease <backend>`) would take as its
 *   argument, but which is a near miss of a subcommand's name (`lease renw`), is an unknown command.
 */
export class TesseraCommand extends Command {
  readonly #required: Option[] = [];

  constructor(name?: string) {
    super(name);
    this.hook('preSubcommand', (parent, subcommand) => rejectMistypedSubcommand(parent, subcommand));
  }

  override createCommand(name?: string): TesseraCommand {
    return new TesseraCommand(name);
  }

  override requiredOption(flags: string, description?: string, ...parseArgOrDefault: unknown[]): this {
    (super.option as (...args: unknown[]) => this).call(this, flags, description, ...parseArgOrDefault);
    this.#required.push(this.options.at(-1)!);
    return this;
  }

  /** Fails like commander does for the first required option without a value (run as a preAction hook). */
  checkRequiredOptions(): void {
    const missing = this.#required.find((option) => this.getOptionValue(option.attributeName()) === undefined);
    if (missing) this.error(`error: required option '${missing.flags}' not specified`, { code: 'commander.missingMandatoryOptionValue' });
  }
}

/** Installs the deferred required-option check on the program (hooks run for every subcommand). */
export function checkRequiredOptionsBeforeActions(program: Command): void {
  program.hook('preAction', (_program, action) => {
    if (action instanceof TesseraCommand) action.checkRequiredOptions();
  });
}

function rejectMistypedSubcommand(parent: Command, subcommand: Command): void {
  const word = parent.args[0];
  // Only the implicit dispatch to the default subcommand: `lease issue renw` is meant literally.
  if (word === undefined || word === subcommand.name() || subcommand.aliases().includes(word)) return;
  const names = parent.commands.filter((command) => command !== subcommand).map((command) => command.name());
  const near = names.filter((name) => isNearMiss(word, name));
  if (near.length === 0) return;
  const path = [...ancestry(parent), subcommand.name()].join(' ');
  parent.error(`error: unknown command '${word}' (did you mean ${near.join(' or ')}?); for '${word}' as the argument of '${path}', write: ${path} ${word} ...`, {
    code: 'commander.unknownCommand',
  });
}

/** `tessera lease` for the lease command: its name and its parents'. */
function ancestry(command: Command): string[] {
  return command.parent ? [...ancestry(command.parent), command.name()] : [command.name()];
}

/** Within one edit per four letters (insert, delete, substitute or swap two neighbours), and not equal. */
function isNearMiss(word: string, name: string): boolean {
  if (word === name) return false;
  return editDistance(word.toLowerCase(), name.toLowerCase()) <= Math.max(1, Math.floor(name.length / 4));
}

/** Optimal string alignment distance (Levenshtein plus transpositions of neighbours). */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

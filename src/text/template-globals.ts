/**
 * The globals a chat template sees besides its variables, as transformers gives them: true,
 * false, none (and True, False, None), range, strftime_now and raise_exception (the interpreter
 * itself adds namespace). range is bounded; nothing here reaches outside the template.
 */
import { limitError } from './chat-template-error.ts';

/** A function turned into text prints as "<function>", not as the engine's JavaScript source. */
export function hideSource(fn: object): void {
  if (typeof fn === 'function' && !Object.hasOwn(fn, 'toString')) Object.defineProperty(fn, 'toString', { value: () => '<function>' });
}

/** Python's range(), refused past maxRange before anything is allocated. */
function boundedRange(maxRange: number) {
  return (...args: unknown[]): number[] => {
    if (args.length < 1 || args.length > 3 || !args.every((a) => Number.isSafeInteger(a))) {
      throw new Error(`range() takes 1 to 3 integers, got (${args.map((a) => typeof a).join(', ')})`);
    }
    const [start, stop, step] = (args.length === 1 ? [0, args[0], 1] : [args[0], args[1], args[2] ?? 1]) as number[];
    if (step === 0) throw new Error('range() step must not be zero');
    const n = Math.max(0, Math.ceil((stop - start) / step));
    if (n > maxRange) throw limitError(`calls range() for ${n} numbers, more than ${maxRange} (maxRange)`);
    return Array.from({ length: n }, (_, i) => start + i * step);
  };
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** strftime_now(format) as transformers gives it to templates: the local time, C-locale names. */
function strftimeNow(format: unknown): string {
  if (typeof format !== 'string') throw new Error('strftime_now() takes a format string');
  const d = new Date();
  const two = (n: number) => String(n).padStart(2, '0');
  const fields: Record<string, () => string> = {
    Y: () => String(d.getFullYear()),
    m: () => two(d.getMonth() + 1),
    d: () => two(d.getDate()),
    b: () => MONTHS[d.getMonth()].slice(0, 3),
    B: () => MONTHS[d.getMonth()],
    H: () => two(d.getHours()),
    M: () => two(d.getMinutes()),
    S: () => two(d.getSeconds()),
    '%': () => '%',
  };
  return format.replace(/%([YmdbBHMS%])/g, (_, c: string) => fields[c]());
}

export function templateGlobals(maxRange: number): Record<string, unknown> {
  return {
    true: true,
    false: false,
    none: null,
    True: true,
    False: false,
    None: null,
    range: boundedRange(maxRange),
    strftime_now: strftimeNow,
    raise_exception: (message: unknown) => {
      throw new Error(typeof message === 'string' ? message : 'raise_exception() was called');
    },
  };
}

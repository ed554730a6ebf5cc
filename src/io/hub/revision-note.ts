/**
 * What the cache remembers about one hub revision or folder URL, beside its files (see
 * src/io/hub/cache.ts for where the note lives). Read and written whole; a note that cannot be read
 * (missing, half-written by an old version, hand-edited) counts as empty, which only costs a
 * request.
 */
import type { FileCache } from './cache.ts';

export interface RevisionNote {
  /** What loads these files again: "org/name@rev" or the folder URL (for `webq cache list`). */
  location: string;
  /** Files the server answered 404 for when asked whether they exist (optional files). */
  absent: string[];
  /** When the server was last asked about this revision (ms since 1970); 0: never. */
  checked: number;
  /** The commit the server said the revision is at (X-Repo-Commit), when it said one. */
  commit?: string;
}

/** A 40-hex-digit git commit: a revision that can never move, so it is never re-checked. */
export function isCommitHash(revision: string | undefined): boolean {
  return revision !== undefined && /^[0-9a-f]{40}$/i.test(revision);
}

export function parseNote(text: string | undefined, location: string): RevisionNote {
  const empty: RevisionNote = { location, absent: [], checked: 0 };
  if (text === undefined) return empty;
  try {
    const v = JSON.parse(text) as Partial<RevisionNote>;
    return {
      location: typeof v.location === 'string' ? v.location : location,
      absent: Array.isArray(v.absent) ? v.absent.filter((f): f is string => typeof f === 'string') : [],
      checked: typeof v.checked === 'number' && Number.isFinite(v.checked) ? v.checked : 0,
      ...(typeof v.commit === 'string' && { commit: v.commit }),
    };
  } catch {
    return empty;
  }
}

/**
 * The note of one revision, kept in memory once read; `update` writes through. Updates are
 * serialised, so two files found absent at once both end up in the note.
 */
export class NoteStore {
  private note: Promise<RevisionNote> | undefined;
  private writes: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly cache: FileCache,
    private readonly key: readonly string[],
    private readonly location: string,
  ) {}

  get(): Promise<RevisionNote> {
    return (this.note ??= this.cache.readNote(this.key).then((t) => parseNote(t, this.location)));
  }

  update(change: (n: RevisionNote) => void): Promise<void> {
    const next = this.writes.then(async () => {
      const n = await this.get();
      change(n);
      await this.cache.writeNote(this.key, `${JSON.stringify(n, null, 2)}\n`);
    });
    // A failed note write (read-only cache) costs a request next time, not the load.
    this.writes = next.catch(() => undefined);
    return this.writes as Promise<void>;
  }
}

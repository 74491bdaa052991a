// store/sqlite/journal: the append-only file that makes a journaled create durable (Store.journal:
// the audit records of reads) with one write() on the thread that answers, instead of a SQLite
// commit on the writer thread that the answer waits for. The writer thread takes the records out
// of the file into the database in batches (SqliteStore.applyJournal), and before any read,
// history or search that could return them or read their index rows; after a crash, the next open
// takes in what was left. docs/performance.md has what it saves; test/store/journal.test.ts.
//
// A file is `<pid>-<tag>-<n>.ndjson` in `<dataDir>/journal/`: one line of JSON per record,
// written whole by one write() (a kill -9 never leaves half a line; a torn line from a power cut
// or a failed write has no newline and is never applied). Each process appends to files of its
// own, one after the other (a new one past JOURNAL_LIMITS.fileBytes); how far each file is in the
// database is kept in the table journal_applied, written in the transaction that applies the
// lines, so no record is written twice or skipped. The files of a process that is gone are taken
// in by the next open; a live process's files are left to it.

import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Resource } from '@medplum/fhirtypes';
import type { IndexEntry } from '../../search/types.js';

/**
 * One journaled create: the resource (fresh id), its index entries (the caller's), who creates it,
 * and its lastUpdated. Lines of servers from before the entries were journaled have no `index`.
 */
export interface JournalRecord {
  at: string;
  creator?: string;
  resource: Resource & { id: string };
  index?: IndexEntry[];
}

/** How the journal is sized; tests make these small. */
export interface JournalLimits {
  /** A file is closed and the next one started past this size; applied files are deleted. */
  fileBytes: number;
  /** The writer takes in at most this many bytes of lines per transaction, so no write waits long behind one. */
  chunkBytes: number;
  /**
   * How far the writer may fall behind the appends: past it, an append resolves only once the
   * writer has caught up, which holds a sustained overload to the writer's pace instead of letting
   * the journal, and the wait of the next search of AuditEvents, grow without end.
   */
  maxLagBytes: number;
}

export const JOURNAL_LIMITS: JournalLimits = { fileBytes: 16 * 1024 * 1024, chunkBytes: 4 * 1024 * 1024, maxLagBytes: 8 * 1024 * 1024 };

export const journalDir = (dataDir: string): string => path.join(dataDir, 'journal');

const NAME = /^(\d+)-([0-9a-z]+)-(\d+)\.ndjson$/;

/** The files this process has open for appending (a second store opened on the same folder leaves them). */
const appending = new Set<string>();

/** This process's appends (the thread that answers HTTP): one open file at a time. */
export class JournalFile {
  private readonly tag = randomBytes(4).toString('hex');
  private fd: number | undefined;
  private n = 0;
  /** The last fdatasync (sync 'full'), settled or not. */
  private syncing: Promise<void> | undefined;
  /** The open file's name and how many bytes this process wrote into it. */
  name = '';
  end = 0;

  constructor(
    private readonly dir: string,
    private readonly options: {
      /** fdatasync after each append (the store's sync 'full'). */
      sync: boolean;
      /** A new file is started when an append would take the open one past this size. */
      maxBytes: number;
      /** Called with each new file's name before anything is written into it. */
      opened: (name: string) => void;
    },
  ) {}

  /**
   * Appends the records: durable against a process crash on return (the bytes are in the file);
   * with sync 'full', durable against a power cut once the promise returned resolves (fdatasync
   * on libuv's thread pool, so the thread that answers HTTP does not wait on the disk).
   */
  append(records: JournalRecord[]): Promise<void> | undefined {
    let text = '';
    for (const record of records) text += `${JSON.stringify(record)}\n`;
    const bytes = Buffer.from(text, 'utf8');
    if (this.fd === undefined || (this.end > 0 && this.end + bytes.length > this.options.maxBytes)) this.open();
    const fd = this.fd as number;
    try {
      let written = 0;
      while (written < bytes.length) written += fs.writeSync(fd, bytes, written, bytes.length - written);
    } catch (error) {
      // Part of the bytes may be in the file without their newline: never appended to again, so
      // that half line stays a torn tail that nothing applies, and the next records go to a new file.
      this.close();
      throw error;
    }
    this.end += bytes.length;
    if (!this.options.sync) return undefined;
    const synced = new Promise<void>((resolve, reject) => fs.fdatasync(fd, (error) => (error ? reject(error) : resolve())));
    this.syncing = synced.catch(() => {});
    return synced;
  }

  private open(): void {
    this.close();
    fs.mkdirSync(this.dir, { recursive: true });
    this.name = `${process.pid}-${this.tag}-${++this.n}.ndjson`;
    appending.add(this.name);
    this.options.opened(this.name);
    this.fd = fs.openSync(path.join(this.dir, this.name), 'a');
    this.end = 0;
  }

  close(): void {
    const fd = this.fd;
    this.fd = undefined;
    appending.delete(this.name);
    if (fd === undefined) return;
    // An fdatasync still running on the thread pool keeps its descriptor until it is done.
    if (this.syncing) void this.syncing.then(() => fs.closeSync(fd));
    else fs.closeSync(fd);
  }
}

/**
 * The complete lines of a file from byte `offset` on, within about `limit` bytes (one line longer
 * than that is read whole), and the offset just after the last one; `eof` when the read went to
 * the end of the file (what is left, if anything, is a line not yet complete).
 */
export function readJournal(file: string, offset: number, limit = Infinity): { records: JournalRecord[]; end: number; eof: boolean } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], end: offset, eof: true };
    throw error;
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size <= offset) return { records: [], end: offset, eof: true };
    let bytes = readAt(fd, offset, Math.min(size - offset, limit));
    let last = bytes.lastIndexOf(0x0a);
    if (last < 0 && offset + bytes.length < size) {
      bytes = readAt(fd, offset, size - offset);
      last = bytes.lastIndexOf(0x0a);
    }
    const eof = offset + bytes.length >= size;
    if (last < 0) return { records: [], end: offset, eof };
    const records = bytes
      .toString('utf8', 0, last)
      .split('\n')
      .map((line) => JSON.parse(line) as JournalRecord);
    return { records, end: offset + last + 1, eof };
  } finally {
    fs.closeSync(fd);
  }
}

function readAt(fd: number, offset: number, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  let read = 0;
  while (read < length) {
    const n = fs.readSync(fd, bytes, read, length - read, offset + read);
    if (n === 0) break;
    read += n;
  }
  return bytes.subarray(0, read);
}

/** The size of a file, 0 when it is gone. */
export function journalSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

/** Every journal file of the folder, in the order their records were appended within each process. */
export function journalFiles(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((name) => NAME.test(name))
    .sort((a, b) => {
      const [, pa, ta, na] = NAME.exec(a) as RegExpExecArray;
      const [, pb, tb, nb] = NAME.exec(b) as RegExpExecArray;
      return pa === pb && ta === tb ? Number(na) - Number(nb) : a < b ? -1 : 1;
    });
}

/** Whether no process will append to this file again: its process is gone, or it is not this one's open file. */
export function ownerGone(name: string): boolean {
  const match = NAME.exec(name);
  return match !== null && !appending.has(name) && !running(Number(match[1]));
}

/** The journal files left by processes that are no longer running, oldest first by name. */
export function orphanFiles(dir: string): string[] {
  return journalFiles(dir).filter(ownerGone);
}

function running(pid: number): boolean {
  // This process's files are those it has open: another with its pid is a former process's.
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

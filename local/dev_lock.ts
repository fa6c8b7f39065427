/**
 * One `deno task dev` per dev folder: a lock file holding the owner's pid.
 * PGlite keeps its database in files that two processes must not open at
 * once, and each server's shutdown removes files of the folder, so a second
 * server on the same folder is refused with the first one's pid. A lock whose
 * process is gone (killed, machine restarted) is taken over.
 *
 * @module
 */

/** The lock's file name, in the dev folder. */
export const LOCK_FILE = "dev.lock";

/** A held lock; `release()` removes the file if it is still this process's. */
export interface DevLock {
  file: string;
  release(): Promise<void>;
}

/** Why the folder is taken. */
export class DevLockError extends Error {
  constructor(readonly pid: number, dir: string) {
    super(
      `Another deno task dev (pid ${pid}) is using ${dir}: stop it first (Ctrl-C in its terminal), ` +
        `or set INGEST_DEV_DIR to use another folder.`,
    );
    this.name = "DevLockError";
  }
}

/** Takes the lock of `dir` (a folder path ending in `/`) for this process, or throws {@linkcode DevLockError}. */
export async function acquireDevLock(dir: string, pid: number = Deno.pid): Promise<DevLock> {
  await Deno.mkdir(dir, { recursive: true });
  const file = `${dir}${LOCK_FILE}`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await Deno.writeTextFile(file, `${pid}\n`, { createNew: true });
      return { file, release: () => releaseLock(file, pid) };
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
    const owner = await readOwner(file);
    if (owner !== null && owner !== pid && isRunning(owner)) throw new DevLockError(owner, dir);
    await Deno.remove(file).catch(() => {}); // stale: its process is gone
  }
  throw new Error(`Cannot take the lock ${file}: it keeps coming back`);
}

async function releaseLock(file: string, pid: number): Promise<void> {
  if (await readOwner(file) === pid) await Deno.remove(file).catch(() => {});
}

async function readOwner(file: string): Promise<number | null> {
  const text = await Deno.readTextFile(file).catch(() => "");
  const pid = Number.parseInt(text, 10);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

/**
 * Whether a process with `pid` exists. Deno.kill has no signal 0, so this
 * sends SIGCONT, which does nothing to a running process; ESRCH says it is gone.
 */
function isRunning(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch (error) {
    return !(error instanceof Deno.errors.NotFound);
  }
}

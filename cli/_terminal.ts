/**
 * Terminal helpers for the `fynx` commands: prompting without echo on the
 * controlling terminal (stdin when it is one, else `/dev/tty`, as OpenSSH's
 * `read_passphrase` does) and raw mode that is restored on every exit path.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A terminal we can prompt on. */
interface Tty {
  /** Reads into `buf`; null at end of input. */
  read(buf: Uint8Array): Promise<number | null>;
  /** Writes all of `data`. */
  write(data: Uint8Array): void;
  /** Sets or clears raw mode. */
  setRaw(raw: boolean): void;
  /** Releases it (closes `/dev/tty`; nothing for stdin). */
  close(): void;
}

let cachedTty: Tty | null | undefined;

/**
 * The controlling terminal: stdin (with prompts on stderr) when stdin is a
 * terminal, else `/dev/tty` when it can be opened, else null.
 */
function openTty(): Tty | null {
  if (cachedTty !== undefined) return cachedTty;
  if (Deno.stdin.isTerminal()) {
    cachedTty = {
      read: (buf) => Deno.stdin.read(buf),
      write: (data) => writeAllSync(Deno.stderr, data),
      setRaw: (raw) => Deno.stdin.setRaw(raw),
      close: () => {},
    };
    return cachedTty;
  }
  try {
    const file = Deno.openSync("/dev/tty", { read: true, write: true });
    if (!file.isTerminal()) {
      file.close();
      cachedTty = null;
      return null;
    }
    cachedTty = {
      read: (buf) => file.read(buf),
      write: (data) => writeAllSync(file, data),
      setRaw: (raw) => file.setRaw(raw),
      close: () => file.close(),
    };
  } catch {
    cachedTty = null;
  }
  return cachedTty;
}

/** True when a terminal is available for prompts. */
export function hasTty(): boolean {
  return openTty() !== null;
}

/** Closes `/dev/tty` if we opened it (so the process can exit). */
export function closeTty(): void {
  cachedTty?.close();
  cachedTty = undefined;
}

function writeAllSync(
  w: { writeSync(p: Uint8Array): number },
  data: Uint8Array,
): void {
  let off = 0;
  while (off < data.length) off += w.writeSync(data.subarray(off));
}

/** Thrown when the user presses Ctrl-C at a prompt. */
export class PromptInterrupted extends Error {
  /** Creates the error. */
  constructor() {
    super("Interrupted");
    this.name = "PromptInterrupted";
  }
}

/**
 * Shows `prompt` on the terminal and reads one line, without echo unless
 * `echo` is set. Returns null when no terminal is available or at end of
 * input (Ctrl-D on an empty line); Ctrl-C rejects with
 * {@linkcode PromptInterrupted}.
 */
export async function promptLine(
  prompt: string,
  echo = false,
): Promise<string | null> {
  const tty = openTty();
  if (!tty) return null;
  tty.write(encoder.encode(prompt));
  let raw = false;
  try {
    tty.setRaw(true);
    raw = true;
  } catch {
    // Not settable: read cooked (echo then is the terminal's business).
  }
  const bytes: number[] = [];
  const buf = new Uint8Array(256);
  try {
    for (;;) {
      const n = await tty.read(buf);
      if (n === null) {
        return bytes.length ? decoder.decode(new Uint8Array(bytes)) : null;
      }
      for (let i = 0; i < n; i++) {
        const b = buf[i];
        if (b === 0x0d || b === 0x0a) {
          return decoder.decode(new Uint8Array(bytes));
        }
        if (b === 0x03) throw new PromptInterrupted();
        if (b === 0x04 && bytes.length === 0) return null;
        if (b === 0x7f || b === 0x08) {
          if (bytes.length) {
            bytes.pop();
            // Drop UTF-8 continuation bytes so a whole character goes.
            while (bytes.length && (bytes[bytes.length - 1] & 0xc0) === 0x80) {
              bytes.pop();
            }
            if (echo) tty.write(encoder.encode("\b \b"));
          }
          continue;
        }
        if (b === 0x15) {
          // Ctrl-U: erase the line.
          bytes.length = 0;
          continue;
        }
        bytes.push(b);
        if (echo && raw) tty.write(buf.subarray(i, i + 1));
      }
    }
  } finally {
    if (raw) {
      try {
        tty.setRaw(false);
      } catch {
        // Terminal went away.
      }
    }
    tty.write(encoder.encode("\r\n"));
  }
}

const restorers = new Set<() => void>();

/** Runs every pending terminal restore (idempotent). */
export function restoreTerminal(): void {
  for (const r of [...restorers]) r();
}

/**
 * Puts stdin in raw mode and returns the function that restores it. The
 * restore also runs from {@linkcode exitProcess} and on the `unload` event,
 * so every exit path gives the user their terminal back.
 */
export function enterRawMode(): () => void {
  if (!Deno.stdin.isTerminal()) return () => {};
  Deno.stdin.setRaw(true);
  const restore = () => {
    if (!restorers.delete(restore)) return;
    try {
      Deno.stdin.setRaw(false);
    } catch {
      // The terminal is gone; nothing to restore.
    }
  };
  restorers.add(restore);
  return restore;
}

globalThis.addEventListener("unload", restoreTerminal);

/** Restores the terminal, closes `/dev/tty`, then exits with `code`. */
export function exitProcess(code: number): never {
  restoreTerminal();
  closeTty();
  Deno.exit(code);
}

/** The terminal size from stdout (or stdin, or stderr), or 80x24. */
export function terminalSize(): { columns: number; rows: number } {
  try {
    return Deno.consoleSize();
  } catch {
    return { columns: 80, rows: 24 };
  }
}
